"""A finished picture job shown to its requester: where (their reply, their channel, a DM), the message with
its buttons, and consent checked right before it is shown."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import discord

from bot.app import DoppelBot
from bot.exts.imagine import group, redrawing
from bot.exts.imagine.buttons import CompareButton, RerollButton
from bot.jobs.models import Job, Reply
from contract import JobState

log = logging.getLogger(__name__)


async def deliver(bot: DoppelBot, job: Job) -> None:
    """A picture job's success follow-up: its pictures shown to the requester. At least once, idempotent."""
    await show_outcome(bot, job)


async def show_outcome(bot: DoppelBot, job: Job) -> None:
    """A finished picture job shown where the requester sees it: their waiting reply while its token lives,
    else their channel, else a DM. A deleted message or a lost channel changes where, never whether.

    Idempotent: editing the reply again shows the same; a channel or DM post is made once per job (the
    message is recorded, and a job with a recorded post is not posted again). Raises on what may pass (a
    Discord outage), so that the follow-up is tried again.
    """
    reply = job.notes.reply
    if reply and time.time() < reply.expires_at and await _edit_reply(bot, job, reply):
        return
    if await _posted_already(bot, job):
        return
    channel_id = job.notes.channel_id
    if channel_id:
        try:
            await post(bot.get_partial_messageable(channel_id), job, bot)
            return
        except (discord.NotFound, discord.Forbidden):
            log.warning("job %s: its channel is gone or closed to me; sending the result by DM", job.id)
    try:
        await post(await bot.create_dm(discord.Object(job.owner.member_id)), job, bot)
    except (discord.NotFound, discord.Forbidden):
        log.error("job %s: its result could be shown nowhere (reply expired, channel gone, DMs closed)", job.id)


async def _edit_reply(bot: DoppelBot, job: Job, reply: Reply) -> bool:
    """The result in the waiting reply; False when the reply is gone (deleted, or its token refused)."""
    done = await deliverable(bot, job)
    text, files, view = message(done)
    hook = discord.Webhook.partial(reply.application_id, reply.token, client=bot)
    try:
        edited = await hook.edit_message(  # type: ignore[call-overload]  # "@original": an interaction's reply
            "@original", content=text, attachments=files, view=view, allowed_mentions=discord.AllowedMentions.none(),
        )
    except (discord.NotFound, discord.Forbidden):
        return False
    except discord.HTTPException as refused:
        if refused.status == 401:  # the token is no longer valid
            return False
        raise
    # Pictures are recorded as showing the people drawn (for /forget); a reply without pictures shows nobody.
    # Recorded after the edit: a crash in between repeats the follow-up, which edits and records again.
    if done.pictures is not None and done.state is JobState.SUCCEEDED:
        await bot.record_posted(edited, done, done.notes.drawn)
    return True


async def _posted_already(bot: DoppelBot, job: Job) -> bool:
    return await bot.db.fetchone("SELECT 1 FROM shown_messages WHERE job_id = ?", (job.id,)) is not None


async def post(channel: discord.abc.Messageable, job: Job, bot: DoppelBot | None = None) -> None:
    """The pictures in the channel, mentioning the requester: when their interaction is gone. With `bot`,
    the message is recorded as showing the people drawn, for /forget."""
    if bot is not None:
        job = await deliverable(bot, job)
    text, files, view = message(job)
    member = discord.Object(job.owner.member_id)
    kwargs: dict[str, Any] = {"view": view} if view is not None else {}
    sent = await channel.send(f"<@{member.id}> {text}", files=files,
                              allowed_mentions=discord.AllowedMentions(users=[member]), **kwargs)
    if bot is not None and job.pictures is not None and job.state is JobState.SUCCEEDED:
        await bot.record_posted(sent, job, job.notes.drawn)


async def deliverable(bot: DoppelBot, job: Job) -> Job:
    """The job as it may be shown, consent checked right before: pictures of someone who no longer agrees
    (a share taken back, an adapter forgotten) are not shown, and the job reads as failed, with why."""
    if job.state is JobState.SUCCEEDED and (refusal := await bot.consent.refusal(job)) is not None:
        return replace(job, state=JobState.FAILED, result=None, error=refusal)
    return job


def message(job: Job) -> tuple[str, list[discord.File], discord.ui.View | None]:
    """The pictures of a finished job as a message: text, files and buttons (or why there are none)."""
    pictures = job.pictures
    if job.state is not JobState.SUCCEEDED or pictures is None:
        return f"No picture this time: {job.error or job.state.value}.", [], None
    request = job.picture_request
    seeds = ", ".join(str(i.seed) for i in pictures.images)
    note = " (plain model: you have no adapter yet, /train makes one)" if job.notes.plain and not request.styles else ""
    if len(job.notes.people) > len(request.people):  # someone drawn from their photos alone
        note = " · drawn from photos: training an adapter with /train makes it more like them"
    if request.compare:
        note = (" · left: without the style, right: with it" if request.styles
                else " · left: the base model, right: with the adapter")
    note += redrawing.note(request)
    plural = "s" if len(pictures.images) > 1 else ""
    text = f"**{discord.utils.escape_markdown(request.prompt)[:1500]}**\nseed{plural} {seeds}{note}"
    files = [discord.File(i.path, f"doppel-{i.seed}.png") for i in pictures.images]
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job.id))
    if (request.adapters and not request.compare and request.group is None and request.source is None
            and request.edit_photo is None):
        view.add_item(CompareButton(job.id))
    redrawing.add_buttons(job, request, view)
    text = group.add_to_message(job, text, view)  # who is where, for a group picture
    return text, files, view
