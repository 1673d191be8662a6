"""The limits and the access rules on their own: uses in, the moment a member may ask again out."""

from __future__ import annotations

import math
import time

from bot.db import Database
from bot.jobs.models import Job, JobNotes
from bot.jobs.store import JobStore
from bot.members import access, quotas
from bot.members.owner import Owner
from bot.members.quotas import HOUR, next_allowed
from bot.settings import BotSettings
from contract import GenerateRequest, JobKind, JobState, TrainRequest

NOW = 100_000.0
ANN, BOB = Owner(1, 1), Owner(1, 2)


def job(kind: JobKind, owner: Owner) -> Job:
    request = (TrainRequest(base="tiny", token="ABCD12") if kind is JobKind.TRAIN
               else GenerateRequest(base="tiny", prompt="a cat"))
    return Job(1, kind, owner, request, JobNotes(), JobState.QUEUED, 0, None, None, None, None, None, False, None,
               0.0, None, None)


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


async def test_access_is_asked_again_as_a_job_starts_and_a_block_lasts_until_lifted(tmp_path):
    db = await Database.open(tmp_path / "doppel.sqlite3")
    now_roles: dict[Owner, list | None] = {ANN: [(5, "Trainers")], BOB: []}

    async def roles_of(owner):
        if owner not in now_roles:
            raise access.RolesUnknown("Discord answered 503")
        return now_roles[owner]

    gate = access.Access(db, roles_of, train_roles=["Trainers"], draw_roles=[])
    try:
        assert await gate.refusal(job(JobKind.TRAIN, ANN)) is None
        assert await gate.refusal(job(JobKind.TRAIN, BOB)) == access.role_refusal(JobKind.TRAIN, ["Trainers"])
        assert await gate.refusal(job(JobKind.GENERATE, BOB)) is None  # no DRAW_ROLES: everyone draws
        now_roles[ANN] = None  # she left the server while her training waited
        assert await gate.refusal(job(JobKind.TRAIN, ANN)) is not None
        # Discord not answering is not a refusal: the roles were checked when the job was asked for.
        assert await gate.refusal(job(JobKind.TRAIN, Owner(1, 9))) is None

        assert await gate.block(BOB, by=1) and not await gate.block(BOB, by=1)
        assert await gate.refusal(job(JobKind.GENERATE, BOB)) == access.BLOCKED
        assert await gate.refusal_for(Owner(2, BOB.member_id), JobKind.GENERATE) is None  # another server's
    finally:
        await db.close()
    db = await Database.open(tmp_path / "doppel.sqlite3")  # kept across a restart
    try:
        gate = access.Access(db, roles_of, train_roles=[], draw_roles=[])
        assert await gate.blocked(BOB)
        assert await gate.unblock(BOB) and not await gate.unblock(BOB)
        assert await gate.refusal(job(JobKind.GENERATE, BOB)) is None
    finally:
        await db.close()


async def test_the_limits_count_the_record_and_say_when_to_ask_again(tmp_path):
    settings = BotSettings(data_dir=tmp_path, trainings_per_day=2, pictures_per_hour=5, request_cooldown_s=30)
    store = await JobStore.open(settings.database_file)
    limits = quotas.Quotas(store, settings)
    try:
        first = await store.submit(JobKind.TRAIN, ANN, TrainRequest(base="tiny", token="ABCD12"), JobNotes(), 9)
        await store.submit(JobKind.TRAIN, ANN, TrainRequest(base="tiny", token="ABCD12"), JobNotes(), 9)
        now = time.time()
        assert await limits.training_refusal(BOB, now) is None
        refusal = await limits.training_refusal(ANN, now)
        assert refusal == ("you have started 2 trainings in the last 24 hours, the most allowed; you may train again "
                           f"{quotas.when(first.created_at + quotas.DAY)}")
        assert await limits.training_refusal(ANN, first.created_at + quotas.DAY + 1) is None

        asked = await store.submit(JobKind.GENERATE, ANN, GenerateRequest(base="tiny", prompt="a", count=4),
                                   JobNotes(), 9)
        pause = await limits.picture_refusal(ANN, 1, asked.created_at + 10)
        again = quotas.when(asked.created_at + 30)
        assert pause == f"please leave 30 s between picture requests; you may ask again {again}"
        assert await limits.picture_refusal(ANN, 1, asked.created_at + 31) is None
        assert "you may ask for 2 more" in (await limits.picture_refusal(ANN, 2, asked.created_at + 31) or "")
        assert "ask for fewer" in (await limits.picture_refusal(BOB, 6) or "")
        await store.finish(asked.id, JobState.FAILED, error="the GPU ran out of memory")  # not their use
        assert await limits.picture_refusal(ANN, 5, asked.created_at + 31) is None

        use = await limits.use(ANN, now)
        assert use[0] == "Pictures in the last hour: 0 of 5"
        assert use[2].startswith("Trainings in the last 24 hours: 2 of 2; the next <t:")
    finally:
        await store.close()
