"""From a member's words to pictures queued: the request, its adapters, the wait.

Every way to ask for pictures (/imagine, /compare, the buttons under pictures) builds its
request here, so each is checked the same way: every person drawn must be the requester
or have shared with them, and has an adapter now, named by its identity (its content); or, on a base that
takes reference photos (FLUX.2 [klein]), is drawn from their chosen photos (bot.members.references), named
by identity too, until they have an adapter (and beside it, as REFERENCE_PHOTOS says). A style named is the
asker's server's, its adapter after the people's (bot.exts.imagine.styling).
Showing what was made is bot.exts.imagine.delivering's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.app import DoppelBot, roles
from bot.exts.imagine import delivering, group, styling
from bot.exts.imagine.redrawing import Redraw
from bot.exts.imagine.refused import Refused
from bot.jobs.models import Job, Reply
from bot.jobs.store import QueueFull
from bot.jobs.updates import JobUpdate
from bot.members import references
from bot.members.owner import Owner, adapter_name
from bot.members.prompts import PromptRefused, resolve_prompt
from bot.members.quotas import sentence
from contract import AdapterRef, GenerateRequest, JobKind, JobState, ReferenceRef, RequestError
from contract.group import GroupPlan
from contract.models import references_taken

TOKEN_LIFE_S = 14 * 60  # Discord's is 15 minutes; after that, answer in the channel instead
RESULT_TIMEOUT_S = 30 * 60


@dataclass(frozen=True)
class Drawing:
    """A request with what the bot keeps beside it: whose adapters (in the request's order: the people's, then
    the styles'), and whether the requester had none (the base model alone)."""

    request: GenerateRequest
    people: tuple[Owner, ...]  # those with an adapter first, in the adapters' order; then those drawn from photos
    adapter_files: dict[str, str]
    plain: bool = False
    reference_files: dict[str, str] | None = None  # reference photo identity -> its file
    styles: tuple[Owner, ...] = ()  # each style adapter's style (its own rows), in the adapters' order


@dataclass(frozen=True)
class Likeness:
    """How the people of a picture are drawn: their adapters and their reference photos, with their files."""

    adapters: tuple[AdapterRef, ...]
    adapter_files: dict[str, str]
    references: tuple[ReferenceRef, ...]
    reference_files: dict[str, str]
    people: tuple[Owner, ...]  # as Drawing.people


async def likeness_of(bot: DoppelBot, requester: Owner, people: Sequence[Owner],
                      weights: Sequence[float], editing: bool = False) -> Likeness:
    """Each person's adapter as it is now and, where the base takes them, their reference photos, if the
    requester may use them; a person without an adapter is drawn from photos alone, where the base can.
    `editing`: a photo is edited (it takes one of the base's reference places), always with the photos."""
    takes = references_taken(bot.settings.picture_model) - (1 if editing else 0)
    mode = "both" if editing and bot.settings.reference_photos == "adapter" else bot.settings.reference_photos
    refs: list[AdapterRef] = []
    photos: list[ReferenceRef] = []
    files: dict[str, str] = {}
    photo_files: dict[str, str] = {}
    with_adapter, from_photos = [], []
    for person, weight in zip(people, weights, strict=True):
        adapter = await bot.consent.usable(requester, person)
        if isinstance(adapter, str) and not (takes and await bot.members.may_use(requester, person)):
            raise Refused(adapter)
        use_adapter = not isinstance(adapter, str) and not (takes and mode == "references")
        if not isinstance(adapter, str) and use_adapter:
            assert adapter.identity is not None  # noqa: S101  usable() gives only adapters whose identity is known
            refs.append(AdapterRef(adapter_name(person), adapter.identity, weight))
            files[adapter.identity] = adapter.path
            with_adapter.append(person)
        else:
            from_photos.append(person)
        if takes and (not use_adapter or mode == "both"):
            chosen = await asyncio.to_thread(references.choose, await bot.members.photos(person), takes)
            if not chosen:
                if use_adapter:
                    continue  # drawn with the adapter alone
                raise Refused(references.none_usable(person.member_id))
            photos += [ReferenceRef(adapter_name(person), p.sha256) for p in chosen]
            photo_files |= {p.sha256: p.path for p in chosen}
    return Likeness(tuple(refs), files, tuple(photos), photo_files, (*with_adapter, *from_photos))


async def from_prompt(bot: DoppelBot, requester: Owner, prompt: str, *, strength: float,
                      photo: discord.Attachment | None = None, style: str | None = None,
                      style_strength: float = styling.DEFAULT_STRENGTH, **options) -> Drawing:
    """The prompt by the token rule (see bot.members.prompts), with the adapters of everyone it names; with
    several people (or a photo), a group picture: each face drawn with only its person's adapter. `style`: the
    name of one of the server's styles, drawn over all of it at `style_strength`."""
    styles = [await styling.named(bot, requester.guild_id, style, style_strength)] if style else []
    try:
        resolved = await resolve_prompt(prompt, requester, bot.members,
                                        from_photos=references_taken(bot.settings.picture_model) > 0)
    except PromptRefused as refusal:
        raise Refused(str(refusal)) from None
    styling.check_room(len(resolved.owners), styles)
    weights = [resolved.weights.get(person, strength) for person in resolved.owners]
    # One person and a photo, on a base that takes reference photos: the photo is edited, not recomposed.
    editing = photo is not None and len(resolved.owners) == 1 and references_taken(bot.settings.picture_model) > 1
    likeness = await likeness_of(bot, requester, resolved.owners, weights, editing=editing)
    if len(likeness.adapters) != len(resolved.owners) and not editing and (photo is not None or
                                                                           len(resolved.owners) > 1):
        raise Refused("in a group picture (or a photo redrawn) everyone needs an adapter: those without one "
                      "can /train first")
    edit_photo = None
    if editing:
        assert photo is not None  # noqa: S101  (editing means a photo was given)
        edit_photo = GroupPlan.encode_photo(await group.read_photo(bot, photo))
        options["count"] = 1  # one photo, edited once
        plan = None
    else:
        plan = await group.plan(bot, resolved, photo)
    if plan is not None:
        options["count"] = 1  # a group picture is one picture
    request = _request(base=bot.settings.picture_model, prompt=styling.prompt_in(resolved.text, styles),
                       adapters=(*likeness.adapters, *(s.ref for s in styles)), group=plan,
                       references=likeness.references, edit_photo=edit_photo, **options)
    files = likeness.adapter_files | {s.ref.identity: s.path for s in styles}
    return Drawing(request, likeness.people, files, plain=resolved.plain,
                   reference_files=likeness.reference_files, styles=tuple(s.owner for s in styles))


async def again(bot: DoppelBot, presser: Owner, job: Job, **changes) -> Drawing:
    """A finished picture job's request made anew (a button press): consent and adapters checked again.
    `changes` are the request's fields to change, and `redraw` (a bot.exts.imagine.redrawing.Redraw) to draw
    from one of its pictures. Its styles must be the very ones it was drawn in."""
    before = job.picture_request
    people = tuple(Owner(job.owner.guild_id, m) for m in job.notes.people)
    weights = [a.weight for a in before.people] + [1.0] * (len(people) - len(before.people))
    likeness = await likeness_of(bot, presser, people, weights, editing=before.edit_photo is not None)
    styles = await styling.kept(bot, [Owner(job.owner.guild_id, m) for m in job.notes.styles], before.styles)
    refs = likeness.adapters
    if len(refs) != len(before.people):
        raise Refused("who has an adapter has changed since these pictures were made; ask anew with /imagine")
    for person, was, now in zip(people, before.people, refs, strict=True):
        # Someone else's adapter must be the one these pictures were made with: after a /forget, the adapter
        # of the same member trained anew is another, which an old button never reaches.
        if person != presser and now.identity != was.identity:
            raise Refused(f"<@{person.member_id}>'s adapter has changed since these pictures were made; "
                          "ask anew with /imagine")
    files = likeness.adapter_files | {s.ref.identity: s.path for s in styles}
    references = likeness.references
    redraw: Redraw | None = changes.pop("redraw", None)
    if redraw is not None:  # drawn from one of these pictures: it travels beside the request, as adapters do
        source, path = await redraw.source(job)
        files[source.identity] = path
        changes |= {"source": source, "compare": False, "group": None, "edit_photo": None}
        references = ()  # a picture drawn from another takes no reference photos
    elif before.source is not None and before.source.identity in job.notes.adapter_files:
        # A re-roll of a variation: drawn from the same picture again (the job's hand-over says if it is gone).
        files[before.source.identity] = job.notes.adapter_files[before.source.identity]
        references = ()
    options = {"count": before.count, "seed": before.seed, "size": before.size, "compare": before.compare,
               "group": before.group, "source": before.source, "edit_photo": before.edit_photo} | changes
    request = _request(base=bot.settings.picture_model, prompt=before.prompt,
                       adapters=(*refs, *(s.ref for s in styles)), references=references, **options)
    return Drawing(request, likeness.people, files, plain=job.notes.plain,
                   reference_files=likeness.reference_files if references else None,
                   styles=tuple(s.owner for s in styles))


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
            people=[p.member_id for p in drawing.people], styles=[s.member_id for s in drawing.styles],
            plain=drawing.plain,
            reference_files=drawing.reference_files or {},
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
