"""A member's photos judged as a set (faces.verdict), from the looks stored with them: what each shows, and
which stay out of training.

A photo the checks doubt (no face, several faces, someone else's face) trains only once its member keeps
it; one not looked at (FACE_CHECKS off, or from before the checks) trains as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.members.store import Photo
from faces.verdict import Look, Verdict, judge


def verdicts(photos: Sequence[Photo]) -> list[Verdict | None]:
    """Each photo's verdict against the whole set (None: not looked at)."""
    return judge([Look.from_json(p.look) if p.look else None for p in photos])


def doubts(photo: Photo, verdict: Verdict | None) -> list[str]:
    """Why this photo stays out of training, in the member's words; empty when it trains."""
    return [] if verdict is None or photo.kept else verdict.doubts


def left_out(photos: Sequence[Photo]) -> list[tuple[Photo, str]]:
    """The photos training leaves out, each with why."""
    return [(p, "; ".join(why)) for p, v in zip(photos, verdicts(photos), strict=True) if (why := doubts(p, v))]


def training_photos(photos: Sequence[Photo]) -> list[Photo]:
    """The photos training uses: all but those left out."""
    out = {p.id for p, _ in left_out(photos)}
    return [p for p in photos if p.id not in out]


def lines(left: Sequence[tuple[Photo, str]]) -> list[str]:
    """One line per photo left out (`left_out`), with why."""
    return [f"Photo {photo.number}: {why}" for photo, why in left]


def marks(photos: Sequence[Photo]) -> list[tuple[str, bool]]:
    """For the contact sheet: a few words under each photo, and whether training leaves it out."""
    return [(_label(p, v), bool(doubts(p, v))) for p, v in zip(photos, verdicts(photos), strict=True)]


def _label(photo: Photo, verdict: Verdict | None) -> str:
    if verdict is None:
        return "not checked"
    return verdict.label() + (", kept" if photo.kept and verdict.doubts else "")
