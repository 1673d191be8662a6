"""The buttons that draw from a picture under it: Variations (subtle and strong: image-to-image with the same
adapters, new seeds) and Upscale (a second pass at twice the side, at a low strength).

Each is a button under pictures like re-roll (bot.exts.imagine.buttons): pressed by the requester, a new request
made through the same asking path, consent and adapters checked again. Its change to the request is a `Redraw`:
which picture, how strongly, how much larger; `asking.again` turns it into the request's source picture.
Whether the base can draw from a picture is the GPU side's to say (its family); it says so in words.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import discord

from bot.exts.imagine.buttons import _PictureButton
from bot.exts.imagine.refused import Refused
from bot.jobs.models import Job
from contract import GenerateRequest, SourcePicture, picture_identity

SUBTLE, STRONG = 0.4, 0.75  # how far a variation goes from its picture (1 ignores it)
UPSCALE_STRENGTH = 0.3  # enough to draw the detail a larger picture needs, little enough to keep the picture
UPSCALE = 2  # times the side


@dataclass(frozen=True)
class Redraw:
    """A request's change that draws from the `index`-th picture of a job."""

    index: int
    strength: float
    scale: int = 1

    async def source(self, job: Job) -> tuple[SourcePicture, str]:
        """The source picture as the request names it (by its content), and its file."""
        pictures = job.pictures
        if pictures is None or not 0 <= self.index < len(pictures.images):
            raise Refused("that picture is not among these any more")
        path = pictures.images[self.index].path
        try:
            data = await asyncio.to_thread(Path(path).read_bytes)
        except OSError:
            raise Refused("that picture is gone; ask anew with /imagine") from None
        identity = await asyncio.to_thread(picture_identity, data)
        return SourcePicture(identity, self.strength, self.scale), path


class _RedrawButton(_PictureButton, template=r"doppel:(?:vary-\w+|upscale):(?P<job_id>\d+):(?P<index>\d+)"):
    def __init__(self, job_id: int, index: int = 0, count: int = 1):
        """The button for the `index`-th of `count` pictures: numbered when there are several."""
        super().__init__(job_id, label=self.label if count == 1 else f"{self.label} {index + 1}", more=f":{index}")
        self.index = index

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item, match: re.Match):
        return cls(int(match["job_id"]), int(match["index"]))


class SubtleVariationButton(_RedrawButton, template=r"doppel:vary-subtle:(?P<job_id>\d+):(?P<index>\d+)"):
    """The picture drawn again near itself, with new seeds."""

    key, verb, label, emoji = "vary-subtle", "vary", "Vary (subtle)", "🌱"

    def changes(self, job: Job) -> dict:
        return {"seed": None, "redraw": Redraw(self.index, SUBTLE)}


class StrongVariationButton(_RedrawButton, template=r"doppel:vary-strong:(?P<job_id>\d+):(?P<index>\d+)"):
    """The picture drawn again further from itself, with new seeds."""

    key, verb, label, emoji = "vary-strong", "vary", "Vary (strong)", "🌳"

    def changes(self, job: Job) -> dict:
        return {"seed": None, "redraw": Redraw(self.index, STRONG)}


class UpscaleButton(_RedrawButton, template=r"doppel:upscale:(?P<job_id>\d+):(?P<index>\d+)"):
    """The picture at twice the side (within the base's largest), redrawn lightly from itself: its seed kept."""

    key, verb, label, emoji = "upscale", "upscale", "Upscale", "🔎"

    def changes(self, job: Job) -> dict:
        pictures = job.pictures
        assert pictures is not None  # noqa: S101  # the button is only under pictures: narrows the type
        seed = pictures.images[self.index].seed if self.index < len(pictures.images) else None
        return {"seed": seed, "count": 1, "redraw": Redraw(self.index, UPSCALE_STRENGTH, UPSCALE)}


BUTTONS = (SubtleVariationButton, StrongVariationButton, UpscaleButton)


def add_buttons(job: Job, request: GenerateRequest, view: discord.ui.View) -> None:
    """The buttons under each picture of a single-pass request (a group picture's faces would blend in one)."""
    pictures = job.pictures
    if pictures is None or request.compare or request.group is not None:
        return
    if request.references or request.edit_photo is not None:
        return  # drawn from a member's photos: a redraw would lose them (a request takes a source or photos)
    upscaled = request.source is not None and request.source.scale > 1
    count = len(pictures.images)
    for index in range(count):
        for button in BUTTONS:
            if button is UpscaleButton and upscaled:
                continue  # already as large as a button makes it
            view.add_item(button(job.id, index, count))


def note(request: GenerateRequest) -> str:
    """What the message says of a picture drawn from another."""
    if request.source is None:
        return ""
    if request.source.scale > 1:
        return " · upscaled"
    return f" · a variation (strength {request.source.strength:g})"
