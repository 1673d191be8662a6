"""From a member's words to pictures in the channel: the request, its adapters, the wait, the message.

Every way to ask for pictures (/imagine, /compare, the buttons under pictures) builds its
request here, so each is checked the same way: every person drawn must be the requester
or have shared with them, and has an adapter now, named by its identity (its content).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import discord

from bot.app import DoppelBot
from bot.jobs.models import Job, Reply
from bot.jobs.store import QueueFull
from bot.jobs.updates import JobUpdate
from bot.members.owner import Owner, adapter_name
from bot.members.prompts import PromptRefused, resolve_prompt
from contract import AdapterRef, GenerateRequest, JobState, RequestError

log = logging.getLogger(__name__)

TOKEN_LIFE_S = 14 * 60  # Discord's is 15 minutes; after that, answer in the channel instead
RESULT_TIMEOUT_S = 30 * 60


@dataclass(frozen=True)
class Drawing:
    """A request with what the bot keeps beside it: whose adapters (in the request's order), and
    whether the requester had none (the base model alone)."""

    request: GenerateRequest
    people: tuple[Owner, ...]
    adapter_files: dict[str, str]
    plain: bool = False


class Refused(Exception):
    """Said to the member as "I cannot draw that: ..."."""


async def adapters_of(bot: DoppelBot, requester: Owner, people: Sequence[Owner],
                      weights: Sequence[float]) -> tuple[tuple[AdapterRef, ...], dict[str, str]]:
    """Each person's adapter as it is now, if the requester may use it."""
    refs, files = [], {}
    for person, weight in zip(people, weights, strict=True):
        adapter = await bot.consent.usable(requester, person)
        if isinstance(adapter, str):
            raise Refused(adapter)
        assert adapter.identity is not None  # usable() gives only adapters whose identity is known
        refs.append(AdapterRef(adapter_name(person), adapter.identity, weight))
        files[adapter.identity] = adapter.path
    return tuple(refs), files


async def from_prompt(bot: DoppelBot, requester: Owner, prompt: str, *, strength: float,
                      photo: discord.Attachment | None = None, **options) -> Drawing:
    """The prompt by the token rule (see bot.members.prompts), with the adapters of everyone it names; with
    several people (or a photo), a group picture: each face drawn with only its person's adapter."""
    from bot.exts.imagine import group

    try:
        resolved = await resolve_prompt(prompt, requester, bot.members)
    except PromptRefused as refusal:
        raise Refused(str(refusal)) from None
    weights = [resolved.weights.get(person, strength) for person in resolved.owners]
    refs, files = await adapters_of(bot, requester, resolved.owners, weights)
    plan = await group.plan(bot, resolved, photo)
    if plan is not None:
        options["count"] = 1  # a group picture is one picture
    request = _request(base=bot.models.picture_model, prompt=resolved.text, adapters=refs, group=plan, **options)
    return Drawing(request, resolved.owners, files, plain=resolved.plain)


async def again(bot: DoppelBot, presser: Owner, job: Job, **changes) -> Drawing:
    """A finished picture job's request made anew (a button press): consent and adapters checked again."""
    before = job.picture_request
    people = tuple(Owner(job.owner.guild_id, m) for m in job.notes.people)
    refs, files = await adapters_of(bot, presser, people, [a.weight for a in before.adapters])
    for person, was, now in zip(people, before.adapters, refs, strict=True):
        # Someone else's adapter must be the one these pictures were made with: after a /forget, the adapter
        # of the same member trained anew is another, which an old button never reaches.
        if person != presser and now.identity != was.identity:
            raise Refused(f"<@{person.member_id}>'s adapter has changed since these pictures were made; "
                          "ask anew with /imagine")
    options = {"count": before.count, "seed": before.seed, "size": before.size, "compare": before.compare,
               "group": before.group} | changes
    request = _request(base=bot.models.picture_model, prompt=before.prompt, adapters=refs, **options)
    return Drawing(request, people, files, plain=job.notes.plain)


def _request(**fields) -> GenerateRequest:
    try:
        return GenerateRequest(**fields)
    except RequestError as problem:
        raise Refused(str(problem)) from None


async def draw(bot: DoppelBot, interaction: discord.Interaction, owner: Owner, drawing: Drawing) -> None:
    """Queue the pictures and keep the reply up to date while they wait.

    Showing the result is not this coroutine's job: a success's pictures are delivered by the job's follow-up
    (`deliver`, recorded with the success, so a restart in between loses nothing), and a failure is shown by
    `show_outcome` here, or after a restart by the cog that waits for jobs it found unfinished.
    """
    started = time.monotonic()
    try:
        job = await bot.runner.submit_generation(
            owner, drawing.request, drawing.adapter_files,
            people=[p.member_id for p in drawing.people], plain=drawing.plain,
            # Where to show the result if the bot restarts before it is ready: the reply while its token lives
            # (the token is Discord's for 15 minutes; it is useless after), else the channel.
            channel_id=interaction.channel_id,
            reply=Reply(interaction.application_id, interaction.token, time.time() + TOKEN_LIFE_S),
        )
    except QueueFull as full:
        await interaction.edit_original_response(content=f"Not now: {full}.")
        return

    async def show(update: JobUpdate) -> None:
        if update.state is JobState.QUEUED and update.position and time.monotonic() - started < TOKEN_LIFE_S:
            waiting = " (no GPU is up right now; it starts when one joins)" if update.waiting_for_gpu else ""
            await interaction.edit_original_response(content=f"Queued: number {update.position} in line…{waiting}")

    bot.runner.subscribe(job.id, show)
    try:
        done = await bot.runner.wait(job.id, timeout=RESULT_TIMEOUT_S)
    except LookupError:  # deleted from the record: someone in it asked to be forgotten
        await interaction.edit_original_response(content="No picture this time: someone in it asked to be forgotten.")
        return
    if done.state is not JobState.SUCCEEDED:
        await show_outcome(bot, done)


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
        await bot.record_posted(edited, done, done.notes.people)
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
        await bot.record_posted(sent, job, job.notes.people)


async def deliverable(bot: DoppelBot, job: Job) -> Job:
    """The job as it may be shown, consent checked right before: pictures of someone who no longer agrees
    (a share taken back, an adapter forgotten) are not shown, and the job reads as failed, with why."""
    if job.state is JobState.SUCCEEDED and (refusal := await bot.consent.refusal(job)) is not None:
        return replace(job, state=JobState.FAILED, result=None, error=refusal)
    return job


def message(job: Job) -> tuple[str, list[discord.File], discord.ui.View | None]:
    """The pictures of a finished job as a message: text, files and buttons (or why there are none)."""
    from bot.exts.imagine import group
    from bot.exts.imagine.buttons import CompareButton, RerollButton

    pictures = job.pictures
    if job.state is not JobState.SUCCEEDED or pictures is None:
        return f"No picture this time: {job.error or job.state.value}.", [], None
    request = job.picture_request
    seeds = ", ".join(str(i.seed) for i in pictures.images)
    note = " (plain model: you have no adapter yet, /train makes one)" if job.notes.plain else ""
    if request.compare:
        note = " · left: the base model, right: with the adapter"
    plural = "s" if len(pictures.images) > 1 else ""
    text = f"**{discord.utils.escape_markdown(request.prompt)[:1500]}**\nseed{plural} {seeds}{note}"
    files = [discord.File(i.path, f"doppel-{i.seed}.png") for i in pictures.images]
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job.id))
    if request.adapters and not request.compare and request.group is None:
        view.add_item(CompareButton(job.id))
    text = group.add_to_message(job, text, view)  # who is where, for a group picture
    return text, files, view
