"""/train, /status, /cancel, and the channel message that shows a training run as it goes.

The progress message is a plain channel message, not the interaction's reply:
an interaction token dies after 15 minutes and training takes longer. Its ids
are in the database, so a restarted bot goes on editing the same message.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.exts.checkpoints import choice_view, prune_other_runs
from bot.jobs.files import copy
from bot.jobs.models import Job, JobKind, JobState, Owner
from bot.jobs.store import QueueFull
from bot.jobs.updates import JobUpdate
from bot.ui.progress import render

log = logging.getLogger(__name__)

DAY = 24 * 3600


class ProgressMessage:
    """Edits one channel message to follow one training job; the newest update wins."""

    def __init__(self, bot: DoppelBot, job: Job, channel_id: int, message_id: int, token: str):
        self.bot, self.job, self.token = bot, job, token
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
            try:
                await self._show(update)
                if update.state is JobState.SUCCEEDED:
                    await self._announce(update)
            except discord.HTTPException:
                log.exception("could not edit the progress message of job %s", self.job.id)
            if update.state.finished:
                return

    async def _show(self, update: JobUpdate) -> None:
        sample = update.samples[0] if update.samples else None
        if sample and sample != self._sample:
            self._sample = sample
            await self.message.edit(content=render(self.token, update), attachments=[discord.File(sample, "sample.png")])
        else:
            await self.message.edit(content=render(self.token, update))

    async def _announce(self, update: JobUpdate) -> None:
        """Make the new adapter the member's, and tell the channel, with the steps they may choose instead."""
        owner, result = self.job.owner, update.result
        adapter = self.bot.members.adapter_file(owner)
        await asyncio.to_thread(copy, result["lora"], adapter)
        steps = int(result["facts"].get("steps", 0))
        # The last step's checkpoint: what "Train more" builds on (start_training falls back to the file).
        await self.bot.members.set_adapter(owner, adapter, self.job.id, steps, state=result.get("state"))
        await prune_other_runs(self.bot, owner, keep_job=self.job.id)
        samples = result.get("samples") or []
        if result.get("timeline"):
            files = [discord.File(result["timeline"], "timeline.png")]
        else:
            files = [discord.File(samples[-1], "sample.png")] if samples else []
        choices = result.get("choices") or []
        first = "the base model" if not result["facts"].get("started_from_step") else "where it started"
        text = (
            f"🎉 <@{owner.member_id}>'s adapter is ready. Put `{self.token}` in an /imagine prompt "
            f"(or just /imagine: your token goes in front of prompts that name no one).\n"
            f"Below: the sample prompts as the model learned, from {first} on the left."
        )
        if len(choices) > 1:
            text += (
                " Likeness often peaks before the last step: the buttons make an earlier step your adapter "
                "(the other steps are deleted then)."
            )
        await self.message.channel.send(
            text,
            files=files,
            view=choice_view(self.job.id, choices, steps),
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(owner.member_id)]),
        )


class Training(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        self._watching: dict[int, asyncio.Task] = {}

    async def cog_load(self) -> None:
        """Pick up the progress messages of jobs that were running when the bot stopped."""
        for job_id, (channel_id, message_id) in (await self.bot.members.progress_messages()).items():
            job = await self.bot.jobs.get(job_id)
            if job is not None and not job.state.finished:
                self.watch(job, channel_id, message_id, job.params["token"])

    async def cog_unload(self) -> None:
        for task in self._watching.values():
            task.cancel()

    def watch(self, job: Job, channel_id: int, message_id: int, token: str) -> None:
        progress = ProgressMessage(self.bot, job, channel_id, message_id, token)
        self.bot.runner.subscribe(job.id, progress.offer)
        task = asyncio.create_task(progress.run())
        self._watching[job.id] = task
        task.add_done_callback(lambda _: self._watching.pop(job.id, None))

    @app_commands.command(name="train", description="Train your adapter from your photos (takes a while)")
    @app_commands.describe(
        steps="Training steps: more learns more, and takes longer (default 1000)",
        resolution="Training resolution in pixels, a multiple of 16 (default 512)",
        fresh="Start from zero instead of building on your adapter (default: build on it)",
    )
    @app_commands.guild_only()
    async def train(
        self,
        interaction: discord.Interaction,
        steps: app_commands.Range[int, 1, 10_000] | None = None,
        resolution: app_commands.Range[int, 16, 1024] | None = None,
        fresh: bool = False,
    ) -> None:
        await self.start_training(interaction, steps, resolution, fresh)

    async def start_training(
        self, interaction: discord.Interaction, steps: int | None, resolution: int | None = None, fresh: bool = False
    ) -> None:
        """Queue a training of the member's photos and post its progress message: /train and "Train more".

        A member who has an adapter trains on from it (from the checkpoint behind it, where kept)
        unless `fresh`: after adding photos, the model need not learn their face from zero again.
        """
        await interaction.response.defer(ephemeral=True, thinking=True)
        owner = owner_of(interaction)
        refusal = await self._refusal(owner, steps, resolution)
        if refusal:
            await interaction.followup.send(refusal, ephemeral=True)
            return
        token = await self.bot.token_for(owner)
        dataset = await self._snapshot(owner)
        steps = steps or self.bot.settings.train_default_steps
        params = {
            "images_dir": str(dataset),
            "token": token,
            "steps": steps,
            # Four samples and checkpoints a run, whatever its length: enough to watch it learn.
            "sample_every": max(1, steps // 4),
            "checkpoint_every": max(1, steps // 4),
        }
        if resolution:
            params["resolution"] = resolution
        adapter = None if fresh else await self.bot.members.adapter(owner)
        if adapter is not None:
            kept = adapter.state and await asyncio.to_thread(Path(adapter.state).is_file)
            params["start_from"] = adapter.state if kept else adapter.path
        try:
            job = await self.bot.runner.submit_training(owner, params)
        except QueueFull as full:
            await asyncio.to_thread(shutil.rmtree, dataset, True)
            await interaction.followup.send(f"Not now: {full}.", ephemeral=True)
            return
        position = await self.bot.runner.position(job.id)
        message = await interaction.channel.send(
            render(token, JobUpdate(job.id, JobState.QUEUED, position=position)),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        await self.bot.members.set_progress_message(job.id, message.channel.id, message.id)
        self.watch(job, message.channel.id, message.id, token)
        building = (
            f", building on your adapter's {adapter.steps} steps (fresh:True starts from zero)" if adapter else ""
        )
        await interaction.followup.send(
            f"Training queued with `{token}` as your trigger token{building}. Progress: {message.jump_url}",
            ephemeral=True,
        )

    async def _refusal(self, owner: Owner, steps: int | None, resolution: int | None) -> str | None:
        settings = self.bot.settings
        photos = len(await self.bot.members.photos(owner))
        if photos < settings.min_photos_to_train:
            return (
                f"You have {photos} photo{'s' if photos != 1 else ''}; training needs at least "
                f"{settings.min_photos_to_train}. Add more with /dataset add."
            )
        if steps is not None and not 10 <= steps <= settings.train_max_steps:
            return f"Steps must be between 10 and {settings.train_max_steps}."
        if resolution is not None and (resolution % 16 or resolution < 64):
            return "The resolution must be a multiple of 16, at least 64 (512, 768 and 1024 suit Flux)."
        active = await self.bot.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
        if any(job.kind is JobKind.TRAIN for job in active):
            return "You already have a training queued or running; /status shows it, /cancel stops it."
        used = await self.bot.jobs.started_since(owner, JobKind.TRAIN, time.time() - DAY)
        if used >= settings.trainings_per_day:
            return f"You have started {used} trainings in the last 24 hours, the most allowed. Try again tomorrow."
        return None

    async def _snapshot(self, owner: Owner) -> Path:
        """Copy the photos and captions as they are now: edits after /train do not change this run."""
        photos = await self.bot.members.photos(owner)
        folder = self.bot.members.folder(owner) / "runs" / uuid.uuid4().hex

        def copy() -> None:
            folder.mkdir(parents=True)
            for photo in photos:
                shutil.copyfile(photo.path, folder / f"{photo.number:03d}.jpg")
                (folder / f"{photo.number:03d}.txt").write_text(photo.caption, encoding="utf-8")

        await asyncio.to_thread(copy)
        return folder

    @app_commands.command(name="status", description="Where your training and pictures stand")
    @app_commands.guild_only()
    async def status(self, interaction: discord.Interaction) -> None:
        owner = owner_of(interaction)
        jobs = await self.bot.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
        lines = []
        for job in jobs:
            what = "Training" if job.kind is JobKind.TRAIN else f"Picture “{job.params.get('prompt', '')[:60]}”"
            if job.state is JobState.QUEUED:
                lines.append(f"{what}: number {await self.bot.runner.position(job.id)} in the queue")
            elif job.kind is JobKind.TRAIN and job.progress and "step" in job.progress:
                lines.append(f"{what}: step {job.progress['step']} of {job.progress['total']}")
            else:
                lines.append(f"{what}: running")
        adapter = await self.bot.members.adapter(owner)
        if adapter:
            lines.append(f"Your adapter: trained for {adapter.steps} steps.")
        await interaction.response.send_message("\n".join(lines) or "Nothing queued or running.", ephemeral=True)

    @app_commands.command(name="cancel", description="Stop your training, or your waiting pictures")
    @app_commands.guild_only()
    async def cancel(self, interaction: discord.Interaction) -> None:
        owner = owner_of(interaction)
        jobs = await self.bot.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
        training = [j for j in jobs if j.kind is JobKind.TRAIN]
        targets = training or [j for j in jobs if j.state is JobState.QUEUED]
        for job in targets:
            await self.bot.runner.cancel(job.id)
        if not targets:
            message = "You have nothing to cancel."
        elif training:
            message = "Stopping your training; it ends at its next step."
        else:
            message = f"Cancelled {len(targets)} waiting picture request{'s' if len(targets) != 1 else ''}."
        await interaction.response.send_message(message, ephemeral=True)


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Training(bot))
