"""Which of a member's photos a picture is drawn from, where the base model takes reference photos (FLUX.2
[klein]): the best of their checked photos, chosen from the face checks stored with each photo.

A reference shows one face, the member's: a photo not looked at, one the checks leave out of training, one
with several faces (even one the member keeps) or someone else's face is never one. Of those left, the sharp
ones with a large face come first; among those, each next is the one least like those chosen (a varied set:
another angle, another light), up to what the base model takes.

Blocking (it decodes the stored looks and imports dlib's helpers): call it in a thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.members.photo_checks import doubts, verdicts
from bot.members.store import Photo


def usable(photos: Sequence[Photo]) -> list[Photo]:
    """The photos that may be references: checked, one face, the member's, not left out."""
    return [p for p, v in zip(photos, verdicts(photos), strict=True)
            if v is not None and v.faces == 1 and not v.someone_else and not doubts(p, v)]


def choose(photos: Sequence[Photo], count: int) -> list[Photo]:
    """Up to `count` references from the member's photos (see the module's text), best first."""
    from faces.measure import distance

    judged = dict(zip((p.id for p in photos), verdicts(photos), strict=True))
    candidates = usable(photos)

    def quality(photo: Photo) -> tuple:
        verdict = judged[photo.id]
        assert verdict is not None  # noqa: S101  (only judged photos are chosen)
        return verdict.blurry, verdict.small, -verdict.sharpness, photo.number

    candidates.sort(key=quality)
    chosen: list[Photo] = []
    while candidates and len(chosen) < count:
        if not chosen:
            pick = candidates[0]
        else:
            def unlike(photo: Photo) -> tuple:
                verdict = judged[photo.id]
                assert verdict is not None and verdict.face is not None  # noqa: S101  (one face each)
                gap = min(distance(verdict.face.descriptor, judged[c.id].face.descriptor)  # type: ignore[union-attr]
                          for c in chosen)
                return not verdict.blurry, not verdict.small, gap  # a sharp photo before a varied one

            pick = max(candidates, key=unlike)  # ties: the better one, as max keeps the first
        chosen.append(pick)
        candidates.remove(pick)
    return chosen


def none_usable(member_id: int) -> str:
    """Why a member cannot be drawn from their photos, for the requester."""
    return (f"<@{member_id}> has no photo I can draw them from yet (one face, theirs, that the checks kept); "
            "add a clear photo of their face with /dataset add")
