"""The playground shows each member what Discord would: the channel, and only their own ephemeral answers."""

from __future__ import annotations

from types import SimpleNamespace

from playground.feed import Viewer


def message(*, ephemeral=False, asked_by=None, deleted=False):
    interaction = SimpleNamespace(user=asked_by) if asked_by is not None else None
    return SimpleNamespace(ephemeral=ephemeral, interaction=interaction, deleted=deleted)


def test_a_member_sees_the_channel_and_only_their_own_ephemeral_answers():
    ann, bob = SimpleNamespace(user=object()), SimpleNamespace(user=object())
    seen_by_ann = Viewer(ann, "general").sees
    assert seen_by_ann(message()) and seen_by_ann(message(asked_by=bob.user))
    assert seen_by_ann(message(ephemeral=True, asked_by=ann.user))
    assert not seen_by_ann(message(ephemeral=True, asked_by=bob.user))
    assert not seen_by_ann(message(ephemeral=True))  # an ephemeral message nobody asked for: nobody's
    assert not seen_by_ann(message(deleted=True))
