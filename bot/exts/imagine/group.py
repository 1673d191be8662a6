"""Group pictures in /imagine: with several people named (or a photo given), each face is drawn with only
its person's adapter (see contract.group and trainer.generation.group).

Here: the plan a request carries (the tokens, the team photo after the photo intake's checks, each
person's identity as the photo checks keep it), the lines saying who is where with their
scores, and the button that offers the single-pass picture when the faces could not be placed.
"""

from __future__ import annotations

import asyncio
import logging

import discord
from PIL import Image

from bot import intake
from bot.app import DoppelBot
from bot.exts.imagine.buttons import _PictureButton
from bot.exts.imagine.refused import Refused
from bot.jobs.models import Job
from bot.members.owner import Owner
from bot.members.prompts import ResolvedPrompt
from contract.group import OUTCOME_KEY, GroupOutcome, GroupPlan

log = logging.getLogger(__name__)

PHOTO_SIDE = 1536  # the team photo as it travels: faces stay large, the request stays small


async def plan(bot: DoppelBot, resolved: ResolvedPrompt, photo: discord.Attachment | None) -> GroupPlan | None:
    """The group plan for a resolved prompt: None where one pass draws it (one person and no photo)."""
    people = resolved.owners
    if photo is None and len(people) < 2:
        return None
    if photo is not None and resolved.plain:
        raise Refused("a photo's faces are redrawn as the people you name, and you have no adapter yet: "
                      "name someone who shared theirs, or /train first")
    photo_text = GroupPlan.encode_photo(await read_photo(bot, photo)) if photo is not None else None
    identities = [await identity(bot, person) for person in people]
    return GroupPlan(tokens=resolved.tokens, photo=photo_text,
                     identities=tuple(identities) if all(i is not None for i in identities) else ())


async def read_photo(bot: DoppelBot, photo: discord.Attachment) -> bytes:
    """The team photo through the photo intake's checks: a clean JPEG of the pixels alone, or Refused."""
    settings = bot.settings
    limits = intake.IntakeLimits(
        max_bytes=settings.max_upload_mb * 2**20,
        min_short_side=settings.min_photo_side,
        max_long_side=PHOTO_SIDE,
        min_kept_short_side=1,  # a wide team photo stays wide: only its faces are used
        allowed_hosts=tuple(settings.attachment_hosts),
        allowed_schemes=tuple(settings.attachment_schemes),
    )
    try:
        intake.check_source_url(photo.url, limits)
        if photo.size > limits.max_bytes:  # before downloading it
            raise intake.Rejected(f"the file is {photo.size / 2**20:.0f} MB; the limit is {settings.max_upload_mb} MB")
        data = await photo.read()
        return (await asyncio.to_thread(intake.prepare, data, limits)).data
    except intake.Rejected as refusal:
        raise Refused(f"the photo: {refusal.reason}") from None
    except discord.HTTPException:
        raise Refused("Discord would not give me the photo; try sending it again") from None


async def identity(bot: DoppelBot, person: Owner) -> tuple[float, ...] | None:
    """A person's face identity, to match and score their redrawn face: their photo set's, as the photo checks
    keep it (faces.verdict.identity, from the faces stored with each photo); None until their photos tell it.
    Decoded and computed in a thread: the bot's event loop only awaits."""
    stored = [p.look for p in await bot.members.photos(person)]
    return await asyncio.to_thread(_identity_of, stored)


def _identity_of(stored: list[str | None]) -> tuple[float, ...] | None:
    from faces.verdict import Look  # imports dlib: not on the event loop
    from faces.verdict import identity as set_identity

    found = set_identity([Look.from_json(text) if text else None for text in stored])
    return None if found is None else tuple(float(x) for x in found)


# ---- the message -------------------------------------------------------------------------


def outcome_of(job: Job) -> GroupOutcome | None:
    """What the group picture's PNG says about its faces (None: not a group picture, or unreadable)."""
    pictures = job.pictures
    if pictures is None or job.picture_request.group is None or not pictures.images:
        return None
    try:
        with Image.open(pictures.images[0].path) as picture:
            text = picture.info.get(f"doppel:{OUTCOME_KEY}")  # a PNG's text chunks, read with its header
        return GroupOutcome.from_json(text) if text else None
    except (OSError, ValueError, KeyError, TypeError):
        log.exception("the faces of job %s could not be read", job.id)
        return None


def who_is_where(job: Job, outcome: GroupOutcome) -> str:
    """Lines naming each face from the left, its person and score; or why the faces were not placed."""
    members = dict(zip(outcome.people, job.notes.people, strict=False))
    if outcome.fallback:
        return (f"{outcome.fallback}, so nobody was redrawn. "
                "The button below draws everyone in one pass instead (faces may blend).")
    parts = []
    for face in sorted(outcome.faces, key=lambda f: f.box[0] + f.box[2]):
        if face.owner is None:
            parts.append("someone kept as drawn")
            continue
        who = f"<@{members[face.owner]}>" if face.owner in members else face.owner
        if face.score is None:
            score = "not scored" if face.passed else "no face found in the redraw"
        else:
            mark = "✅" if face.passed else "⚠️"
            score = f"{mark} distance {face.score:.2f}"
        tries = f", {face.tries} tries" if face.tries > 1 else ""
        parts.append(f"{who} ({score}{tries})")
    limit = f" · a distance of {outcome.threshold:.2f} or less passes" if outcome.threshold is not None else ""
    return "From the left: " + ", ".join(parts) + limit


def add_to_message(job: Job, text: str, view: discord.ui.View) -> str:
    """A group picture's message: who is where, and the single-pass button when the faces could not be placed."""
    outcome = outcome_of(job)
    if outcome is None:
        return text
    if outcome.fallback:
        view.add_item(SinglePassButton(job.id))
    return f"{text}\n{who_is_where(job, outcome)}"


class SinglePassButton(_PictureButton, template=r"doppel:single:(?P<job_id>\d+)"):
    """The same prompt and seed in one pass with every adapter (today's picture), when faces could not be placed."""

    key, verb, label, emoji = "single", "redraw", "Draw in one pass", "🖼️"

    def changes(self, job: Job) -> dict:
        return {"group": None}

