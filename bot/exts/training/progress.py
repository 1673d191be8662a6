"""The channel message that follows a training run, and the announcement once its adapter is the member's.

The progress message is a plain channel message, not the interaction's reply: an
interaction token dies after 15 minutes and training takes longer. Its ids are in the
database, so a restarted bot goes on editing the same message. The announcement is a
follow-up of the job's success (after the adapter was made the member's), so it is
posted even when the bot restarted in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import discord

from bot.app import DoppelBot
from bot.exts.training.choices import choice_view
from bot.jobs.models import Job
from bot.jobs.updates import JobUpdate
from bot.ui.progress import render

log = logging.getLogger(__name__)


class ProgressMessage:
    """Edits one channel message to follow one training job; the newest update wins."""

    def __init__(self, bot: DoppelBot, job: Job, channel_id: int, message_id: int):
        self.job, self.token = job, job.training.token
        self.message = bot.get_partial_messageable(channel_id).get_partial_message(message_id)
        self._latest: JobUpdate | None = None
        self._changed = asyncio.Event()
        self._sample: str | None = None

    def offer(self, update: JobUpdate) -> None:
        self._latest = update
        self._changed.set()

    async def run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            update = self._latest
            if update is None:
                continue
            try:
                await self._show(update)
            except discord.HTTPException:
                log.exception("could not edit the progress message of job %s", self.job.id)
            if update.state.finished:
                return

    async def _show(self, update: JobUpdate) -> None:
        sample = update.samples[0] if update.samples else None
        if sample and sample != self._sample:
            self._sample = sample
            await self.message.edit(
                content=render(self.token, update), attachments=[discord.File(sample, "sample.png")]
            )
        else:
            await self.message.edit(content=render(self.token, update))


async def announce(bot: DoppelBot, job: Job) -> None:
    """Tell the channel the adapter is ready, with the timeline and the steps its owner may choose instead."""
    ids = (await bot.members.progress_messages()).get(job.id)
    result = job.training_result
    if ids is None or result is None:
        return  # not started from Discord (tests, the command line): nobody to tell
    owner, token = job.owner, job.training.token
    style = await bot.styles.of_owner(owner)
    if result.timeline:
        files = [discord.File(result.timeline, "timeline.png")]
    else:
        files = [discord.File(result.samples[-1], "sample.png")] if result.samples else []
    first = "the base model" if not result.facts.get("started_from_step") else "where it started"
    if style is not None:
        asker = job.notes.requested_by
        text = _style_ready(style.name, result.choices, result.recommended, first)
        mentioned = [discord.Object(asker)] if asker else []
    else:
        text = _member_ready(owner.member_id, token, result.choices, result.recommended, first)
        mentioned = [discord.Object(owner.member_id)]
    message = await bot.get_partial_messageable(ids[0]).send(
        text,
        files=files,
        view=choice_view(job.id, result.choices, result.steps, result.recommended),
        allowed_mentions=discord.AllowedMentions(users=mentioned),
    )
    await bot.record_posted(message, job)  # /forget (or /style forget) deletes it


def _style_ready(name: str, choices: Sequence[int], recommended: int | None, first: str) -> str:
    text = (
        f"🎉 The style `{name}` is ready: anyone here can draw with it, `/imagine style:{name} a poster for the "
        f"summer sale`.\nBelow: the sample prompts as the model learned, from {first} on the left."
    )
    if len(choices) > 1:
        text += " The buttons make an earlier step the style's adapter (the other steps are deleted then)."
    if recommended is not None:
        text += (f" Step {recommended} is recommended by the run's measure (its button comes first; the scores are "
                 "under the timeline).")
    return text


def _member_ready(member_id: int, token: str, choices: Sequence[int], recommended: int | None, first: str) -> str:
    text = (
        f"🎉 <@{member_id}>'s adapter is ready. Put `{token}` in an /imagine prompt "
        f"(or just /imagine: your token goes in front of prompts that name no one).\n"
        f"Below: the sample prompts as the model learned, from {first} on the left."
    )
    if len(choices) > 1:
        text += (
            " Likeness often peaks before the last step: the buttons make an earlier step your adapter "
            "(the other steps are deleted then)."
        )
    if recommended is not None:
        text += (
            f" Step {recommended} looks most like you in the samples while still drawing every prompt: "
            "it is recommended (its button comes first; the scores are under the timeline)."
        )
    return text
