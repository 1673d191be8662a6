"""From a member's words to pictures queued: the request, its adapters, the wait.

Every way to ask for pictures (/imagine, /compare, the buttons under pictures) builds its
request here, so each is checked the same way: every person drawn must be the requester
or have shared with them, and has an adapter now, named by its identity (its content).
Showing what was made is bot.exts.imagine.delivering's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.app import DoppelBot, roles
from bot.exts.imagine import delivering, group
from bot.exts.imagine.redrawing import Redraw
from bot.exts.imagine.refused import Refused
from bot.jobs.models import Job, Reply
from bot.jobs.store import QueueFull
from bot.jobs.updates import JobUpdate
from bot.members.owner import Owner, adapter_name
from bot.members.prompts import PromptRefused, resolve_prompt
from bot.members.quotas import sentence
from contract import AdapterRef, GenerateRequest, JobKind, JobState, RequestError

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


async def adapters_of(bot: DoppelBot, requester: Owner, people: Sequence[Owner],
                      weights: Sequence[float]) -> tuple[tuple[AdapterRef, ...], dict[str, str]]:
    """Each person's adapter as it is now, if the requester may use it."""
    refs, files = [], {}
    for person, weight in zip(people, weights, strict=True):
        adapter = await bot.consent.usable(requester, person)
        if isinstance(adapter, str):
            raise Refused(adapter)
        assert adapter.identity is not None  # noqa: S101  usable() gives only adapters whose identity is known
        refs.append(AdapterRef(adapter_name(person), adapter.identity, weight))
        files[adapter.identity] = adapter.path
    return tuple(refs), files


async def from_prompt(bot: DoppelBot, requester: Owner, prompt: str, *, strength: float,
                      photo: discord.Attachment | None = None, **options) -> Drawing:
    """The prompt by the token rule (see bot.members.prompts), with the adapters of everyone it names; with
    several people (or a photo), a group picture: each face drawn with only its person's adapter."""
    try:
        resolved = await resolve_prompt(prompt, requester, bot.members)
    except PromptRefused as refusal:
        raise Refused(str(refusal)) from None
    weights = [resolved.weights.get(person, strength) for person in resolved.owners]
    refs, files = await adapters_of(bot, requester, resolved.owners, weights)
    plan = await group.plan(bot, resolved, photo)
    if plan is not None:
        options["count"] = 1  # a group picture is one picture
    request = _request(base=bot.settings.picture_model, prompt=resolved.text, adapters=refs, group=plan, **options)
    return Drawing(request, resolved.owners, files, plain=resolved.plain)


async def again(bot: DoppelBot, presser: Owner, job: Job, **changes) -> Drawing:
    """A finished picture job's request made anew (a button press): consent and adapters checked again.
    `changes` are the request's fields to change, and `redraw` (a bot.exts.imagine.redrawing.Redraw) to draw
    from one of its pictures."""
    before = job.picture_request
    people = tuple(Owner(job.owner.guild_id, m) for m in job.notes.people)
    refs, files = await adapters_of(bot, presser, people, [a.weight for a in before.adapters])
    for person, was, now in zip(people, before.adapters, refs, strict=True):
        # Someone else's adapter must be the one these pictures were made with: after a /forget, the adapter
        # of the same member trained anew is another, which an old button never reaches.
        if person != presser and now.identity != was.identity:
            raise Refused(f"<@{person.member_id}>'s adapter has changed since these pictures were made; "
                          "ask anew with /imagine")
    redraw: Redraw | None = changes.pop("redraw", None)
    if redraw is not None:  # drawn from one of these pictures: it travels beside the request, as adapters do
        source, path = await redraw.source(job)
        files[source.identity] = path
        changes |= {"source": source, "compare": False, "group": None}
    elif before.source is not None and before.source.identity in job.notes.adapter_files:
        # A re-roll of a variation: drawn from the same picture again (the job's hand-over says if it is gone).
        files[before.source.identity] = job.notes.adapter_files[before.source.identity]
    options = {"count": before.count, "seed": before.seed, "size": before.size, "compare": before.compare,
               "group": before.group, "source": before.source} | changes
    request = _request(base=bot.settings.picture_model, prompt=before.prompt, adapters=refs, **options)
    return Drawing(request, people, files, plain=job.notes.plain)


def _request(**fields) -> GenerateRequest:
    try:
        return GenerateRequest(**fields)
    except RequestError as problem:
        raise Refused(str(problem)) from None


async def draw(bot: DoppelBot, interaction: discord.Interaction, owner: Owner, drawing: Drawing) -> None:
    """Queue the pictures and keep the reply up to date while they wait.

    Showing the result is not this coroutine's job: a success's pictures are delivered by the job's follow-up
    (`delivering.deliver`, recorded with the success, so a restart in between loses nothing), and a failure is shown by
    `delivering.show_outcome` here, or after a restart by the cog that waits for jobs it found unfinished.
    """
    started = time.monotonic()
    refusal = (await bot.access.refusal_for(owner, JobKind.GENERATE, roles(interaction.user))
               or await bot.quotas.picture_refusal(owner, drawing.request.count))
    if refusal is not None:
        await interaction.edit_original_response(content=sentence(refusal))
        return
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
        await delivering.show_outcome(bot, done)
