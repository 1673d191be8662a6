"""The limits and the access rules on their own: uses in, the moment a member may ask again out."""

from __future__ import annotations

import math

from bot.members import access, quotas
from bot.members.quotas import HOUR, next_allowed
from contract import JobKind

NOW = 100_000.0


def test_within_the_limit_a_request_goes_ahead():
    assert next_allowed([], 3, HOUR, 3, NOW) is None
    assert next_allowed([(NOW - 10, 2)], 3, HOUR, 1, NOW) is None
    assert next_allowed([(NOW - 2 * HOUR, 3)], 3, HOUR, 3, NOW) is None  # out of the window


def test_over_the_limit_the_member_may_ask_once_enough_old_uses_leave_the_window():
    uses = [(NOW - 50, 2), (NOW - 40, 1), (NOW - 30, 1)]
    assert next_allowed(uses, 4, HOUR, 1, NOW) == NOW - 50 + HOUR
    assert next_allowed(uses, 4, HOUR, 2, NOW) == NOW - 50 + HOUR
    assert next_allowed(uses, 4, HOUR, 3, NOW) == NOW - 40 + HOUR  # two uses must leave for three pictures
    assert next_allowed(uses, 4, HOUR, 5, NOW) == math.inf  # never: more than the limit at once


def test_a_moment_is_a_discord_timestamp_rounded_up():
    assert quotas.when(1000.2) == "<t:1001:R>"
    assert quotas.sentence("you may ask again <t:1:R>") == "You may ask again <t:1:R>."


def test_roles_are_named_by_name_or_id_and_none_named_lets_everyone():
    artists = [(11, "Artists"), (1, "@everyone")]
    assert access.allowed(artists, [])
    assert access.allowed(None, [])
    assert access.allowed(artists, ["Artists"]) and access.allowed(artists, ["11"])
    assert not access.allowed(artists, ["Trainers", "12"])
    assert not access.allowed(None, ["Artists"])  # not in the server any more
    assert access.role_refusal(JobKind.TRAIN, ["Trainers"]) == "only members with the role `Trainers` may train here"
