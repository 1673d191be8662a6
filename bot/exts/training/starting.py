"""Starting a training: the checks, the run's copy of the photos, the queued job and its progress message.

/train, /style train and the "Train more" modal all start one here: a member's own adapter, or a style's (its
rows under its own owner, asked for by a member allowed to train styles, who is charged for it). Once the
progress message is posted, the start is announced as "training_queued" (job, channel id, message id): the
Training cog follows the message from then on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import discord

from bot.app import DoppelBot, owner_of, roles
from bot.jobs import files
from bot.jobs.store import QueueFull
from bot.jobs.updates import JobUpdate
from bot.members import photo_checks, storage
from bot.members.owner import Owner
from bot.members.quotas import sentence
from bot.members.store import Photo
from bot.styles.store import Style
from bot.ui.progress import render
from contract import LOOKS_FILENAME, JobKind, JobState, RequestError, TrainRequest
from contract.limits import MEMBER_STEPS
from contract.models import adapter_facts
from contract.subjects import DEFAULTS, PERSON, STYLE

log = logging.getLogger(__name__)


async def start_training(
    bot: DoppelBot, interaction: discord.Interaction, steps: int | None, resolution: int | None = None,
    fresh: bool = False, style: Style | None = None,
) -> None:
    """Queue a training of the member's photos (or of `style`'s pictures) and post its progress message.

    An owner who has an adapter trains on from it (from the checkpoint behind it, where kept)
    unless `fresh`: after adding photos, the model need not learn their face from zero again.
    """
    await interaction.response.defer(ephemeral=True, thinking=True)
    asker = owner_of(interaction)
    owner = style.owner if style else asker
    train = f"/style train name:{style.name}" if style else "/train"
    refusal = await _refusal(bot, interaction, owner, steps, style)
    if refusal:
        await interaction.followup.send(refusal, ephemeral=True)
        return
    token = style.token if style else await bot.token_for(owner)
    defaults = DEFAULTS[STYLE if style else PERSON]
    try:
        request = TrainRequest(
            base=bot.settings.base_model, token=token,
            steps=steps or (defaults.steps if style else bot.settings.train_default_steps), rank=defaults.rank,
            lr=defaults.lr, resolution=resolution, memory_mode=bot.settings.memory_mode,
            caption_model=bot.settings.caption_model, subject=STYLE if style else PERSON,
        )
    except RequestError as problem:
        await interaction.followup.send(f"I cannot train that: {problem}.", ephemeral=True)
        return
    adapter = None if fresh else await bot.members.adapter(owner)
    start_from = None
    facts = await asyncio.to_thread(adapter_facts, adapter.path) if adapter is not None else {}
    if facts.get("source") == "upload":
        adapter = None  # trained elsewhere, at its own rank and layers: not a start doppel's training can resume
    if adapter is not None:
        trained_on = facts.get("base_model")
        if trained_on and trained_on != request.base:  # BASE_MODEL changed since: its layers are another model's
            whose, pictures = (f"The style `{style.name}`'s adapter", "its pictures") if style else \
                ("Your adapter", "your photos")
            await interaction.followup.send(
                f"{whose} was trained on `{trained_on}`, and this server now trains on `{request.base}`: "
                f"an adapter cannot be carried over to another base model. Run `{train} fresh:True` to train a new "
                f"one from {pictures} (they are kept; the adapter stays until the new one replaces it).",
                ephemeral=True,
            )
            return
        kept = await asyncio.to_thread(Path(adapter.state).is_file) if adapter.state else False
        start_from = adapter.state if kept else adapter.path
    try:
        dataset = await _snapshot(bot, owner, await _training_set(bot, owner, style))
    except NoRoom as why:
        await interaction.followup.send(str(why), ephemeral=True)
        return
    try:
        job = await bot.runner.submit_training(owner, request, images_dir=dataset, start_from=start_from,
                                               snapshot=True, requested_by=asker.member_id if style else None)
    except QueueFull as full:
        await asyncio.to_thread(shutil.rmtree, dataset, True)
        await interaction.followup.send(f"Not now: {full}.", ephemeral=True)
        return
    position = await bot.runner.position(job.id)
    message = await interaction.channel.send(  # type: ignore[union-attr]
        render(token, JobUpdate(job.id, JobState.QUEUED, position=position, waiting_for_gpu=not bot.runner.gpu_ready)),
        allowed_mentions=discord.AllowedMentions.none(),
    )
    await bot.members.set_progress_message(job.id, message.channel.id, message.id)
    bot.dispatch("training_queued", job, message.channel.id, message.id)
    whose = "its" if style else "your"
    building = f", building on {whose} adapter's {adapter.steps} steps (fresh:True starts from zero)" if adapter else ""
    if style:
        await interaction.followup.send(
            f"Training of the style `{style.name}` queued with `{token}` as its trigger token{building}. "
            f"Progress: {message.jump_url}", ephemeral=True,
        )
        return
    left = photo_checks.lines(photo_checks.left_out(await bot.members.photos(owner)))
    leaving = "\n".join(["", "Left out (/dataset list has buttons to keep them):", *left]) if left else ""
    await interaction.followup.send(
        f"Training queued with `{token}` as your trigger token{building}. Progress: {message.jump_url}" + leaving,
        ephemeral=True,
    )


async def _training_set(bot: DoppelBot, owner: Owner, style: Style | None) -> list[Photo]:
    """What the run learns from: a member's photos but those the face checks left out; all of a style's."""
    photos = await bot.members.photos(owner)
    return photos if style else photo_checks.training_photos(photos)


async def _refusal(bot: DoppelBot, interaction: discord.Interaction, owner: Owner, steps: int | None,
                   style: Style | None) -> str | None:
    settings = bot.settings
    asker = owner_of(interaction)
    if style is None:
        denied = await bot.access.refusal_for(owner, JobKind.TRAIN, roles(interaction.user))
    else:
        denied = await bot.access.style_refusal(asker, roles(interaction.user), interaction.permissions.manage_guild)
    if denied is not None:
        return sentence(denied)
    every = await bot.members.photos(owner)
    photos = len(await _training_set(bot, owner, style))
    if style and photos < settings.style_min_pictures:
        return (f"The style `{style.name}` has {photos} picture{'s' if photos != 1 else ''}; training needs at least "
                f"{settings.style_min_pictures}. Add more with /style add.")
    if not style and photos < settings.min_photos_to_train:
        usable = f" ({len(every) - photos} more are left out: /dataset list says why)" if photos < len(every) else ""
        return (
            f"You have {photos} photo{'s' if photos != 1 else ''}{usable}; training needs at least "
            f"{settings.min_photos_to_train}. Add more with /dataset add."
        )
    if steps is not None and steps > settings.train_max_steps:
        return f"Steps are from {MEMBER_STEPS.low} to {settings.train_max_steps}; you asked for {steps}."
    active = await bot.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
    if any(job.kind is JobKind.TRAIN for job in active):
        if style:
            return f"The style `{style.name}` is training already; /style list shows it."
        return "You already have a training queued or running; /status shows it, /cancel stops it."
    over = await bot.quotas.training_refusal(asker)  # a style's training is charged to whoever asked for it
    if over is not None:
        return sentence(over)
    full = await asyncio.to_thread(files.too_full_to_train, settings.jobs_dir, settings.train_min_free_mb)
    if full:
        log.error("/train refused: %s has less than TRAIN_MIN_FREE_MB=%d MB free", settings.jobs_dir,
                  settings.train_min_free_mb)
    return full


class NoRoom(Exception):
    """The run's copy of the photos does not fit (the member's disk, or the bot's); the text is for the member."""


async def _snapshot(bot: DoppelBot, owner: Owner, photos: list[Photo]) -> Path:
    """Copy the photos and captions as they are now: edits after /train do not change this run.

    The copy counts towards the member's disk (MEMBER_DISK_MB) until the run ends and deletes it; one that
    does not fit is not begun, and one that fails half way is removed whole. Raises NoRoom."""
    folder = bot.members.folder(owner) / "runs" / uuid.uuid4().hex
    size = await asyncio.to_thread(lambda: sum(Path(p.path).stat().st_size for p in photos))
    used = await storage.disk_used(bot.members, bot.jobs, bot.settings.jobs_dir, owner)
    full = storage.over_limit(used, size, bot.settings.member_disk_mb)
    if full:
        raise NoRoom(f"I cannot train now: {full}.")

    def copy() -> None:
        folder.mkdir(parents=True)
        try:
            for photo in photos:
                _write_private(folder / f"{photo.number:03d}.jpg", Path(photo.path).read_bytes())
                _write_private(folder / f"{photo.number:03d}.txt", photo.caption.encode("utf-8"))
            # What the face checks saw travels too: the trainer looks only at photos it is not told about.
            looks = {f"{photo.number:03d}.jpg": json.loads(photo.look) for photo in photos if photo.look}
            _write_private(folder / LOOKS_FILENAME, json.dumps(looks).encode("utf-8"))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    try:
        await asyncio.to_thread(copy)
    except OSError:
        raise NoRoom("I could not copy your photos for training (the bot's disk is full or cannot be written); "
                     "nothing was queued. Tell an admin, then try again.") from None
    return folder


def _write_private(path: Path, data: bytes) -> None:
    """A new file readable by the bot's user only."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        handle.write(data)
