"""/train, /status and /cancel, and the progress messages of the trainings going on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.exts.training.progress import ProgressMessage, announce
from bot.exts.training.starting import start_training
from bot.jobs.models import Job
from contract import JobKind, JobState
from contract.limits import MEMBER_STEPS, RESOLUTION


class Training(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        self._watching: dict[int, asyncio.Task] = {}
        # The range Discord's client shows and enforces is TRAIN_MAX_STEPS's, the one the bot holds to (and the
        # playground says); discord.py offers no public way to set an option's bounds after the class is made.
        steps = self.train._params["steps"]
        steps.max_value = bot.settings.train_max_steps
        default = bot.settings.train_default_steps
        steps.description = f"Training steps: more learns more, and takes longer (default {default})"

    async def cog_load(self) -> None:
        """Announce finished runs (a follow-up), and pick up the progress messages of jobs still going."""
        self.bot.runner.followups.register(JobKind.TRAIN, "announce_training", lambda job: announce(self.bot, job))
        for job_id, (channel_id, message_id) in (await self.bot.members.progress_messages()).items():
            job = await self.bot.jobs.get(job_id)
            if job is not None and not job.state.finished:
                self.watch(job, channel_id, message_id)

    async def cog_unload(self) -> None:
        for task in self._watching.values():
            task.cancel()

    @commands.Cog.listener()
    async def on_jobs_forgotten(self, job_ids: Sequence[int]) -> None:
        """Stop editing the progress messages of these jobs (their member was forgotten: the messages go)."""
        tasks = [task for job_id in job_ids if (task := self._watching.pop(job_id, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @commands.Cog.listener()
    async def on_training_queued(self, job: Job, channel_id: int, message_id: int) -> None:
        """A training started from Discord (bot.exts.training.starting): its progress message follows it."""
        self.watch(job, channel_id, message_id)

    def watch(self, job: Job, channel_id: int, message_id: int) -> None:
        progress = ProgressMessage(self.bot, job, channel_id, message_id)
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
        steps: app_commands.Range[int, MEMBER_STEPS.low, MEMBER_STEPS.high] | None = None,
        resolution: app_commands.Range[int, RESOLUTION.low, RESOLUTION.high] | None = None,
        fresh: bool = False,
    ) -> None:
        await start_training(self.bot, interaction, steps, resolution, fresh)

    @app_commands.command(name="status", description="Where your training and pictures stand")
    @app_commands.guild_only()
    async def status(self, interaction: discord.Interaction) -> None:
        owner = owner_of(interaction)
        jobs = await self.bot.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
        lines = []
        for job in jobs:
            what = "Training" if job.kind is JobKind.TRAIN else f"Picture “{job.picture_request.prompt[:60]}”"
            if job.state is JobState.QUEUED:
                line = f"{what}: number {await self.bot.runner.position(job.id)} in the queue"
                if not self.bot.runner.gpu_ready:
                    line += " (no GPU is up right now; it starts when one joins)"
                lines.append(line)
            elif job.kind is JobKind.TRAIN and job.progress and job.progress.step is not None:
                lines.append(f"{what}: step {job.progress.step} of {job.progress.total}")
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
