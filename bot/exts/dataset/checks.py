"""What /dataset add and /dataset list say about faces.

A photo the checks doubt (bot/members/photo_checks.py) is stored but stays out of training until its member
presses "Keep photo N" (bot.exts.dataset.keep) under the reply that told them, or under /dataset list. Verdicts
are judged on the whole set, so a batch can also cast doubt on an earlier photo (the set's identity forms once
three photos show one face); those are told too, with their buttons.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot import intake
from bot.members import photo_checks
from bot.members.owner import Owner
from bot.members.store import MemberStore, Photo


@dataclass
class Judged:
    """A batch's photos judged with the set: a line for each photo added, lines about earlier photos the batch
    casts doubt on, and the buttons to keep the doubted ones."""

    added: dict[str, str] = field(default_factory=dict)  # stored SHA-256 -> its line
    earlier: list[str] = field(default_factory=list)
    keep: list[Photo] = field(default_factory=list)
    usable: int = 0


async def look_at_unchecked(
    members: MemberStore, faces: intake.FaceChecks, owner: Owner, photos: Sequence[Photo]
) -> list[Photo]:
    """Look at those of the member's `photos` (as just read) never looked at (from before the checks); their
    photos after (read again only when one was looked at)."""
    for photo in photos:
        if photo.look is None:
            data = await asyncio.to_thread(Path(photo.path).read_bytes)
            found = await faces.look(data)
            if found is not None:
                await members.set_look(photo.id, found.to_json())
    return await members.photos(owner) if any(p.look is None for p in photos) else list(photos)


async def judge_batch(members: MemberStore, owner: Owner, before: Sequence[Photo], added: dict[str, str]) -> Judged:
    """`before`: the photos before the batch; `added`: stored SHA-256 -> shown file name of those it added."""
    doubted_before = {p.id for p, v in zip(before, photo_checks.verdicts(before), strict=True)
                      if photo_checks.doubts(p, v)}
    now = await members.photos(owner)
    judged = Judged()
    for photo, verdict in zip(now, photo_checks.verdicts(now), strict=True):
        why = photo_checks.doubts(photo, verdict)
        judged.usable += not why
        if photo.sha256 in added:
            name = added[photo.sha256]
            if why:
                judged.added[photo.sha256] = (f"⚠️ {name}: added as photo {photo.number}, but {'; '.join(why)}. "
                                              "It stays out of training unless you keep it.")
            else:
                notes = f" ({', '.join(verdict.notes)})" if verdict is not None and verdict.notes else ""
                judged.added[photo.sha256] = f"✅ {name}: added as photo {photo.number}{notes}"
        elif why and photo.id not in doubted_before:
            judged.earlier.append(f"⚠️ Photo {photo.number} ({photo.shown_name}): now that I know your face from "
                                  f"your photos, {'; '.join(why)}. It stays out of training unless you keep it.")
        else:
            continue
        if why:
            judged.keep.append(photo)
    return judged
