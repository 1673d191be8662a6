"""Choosing the moment: buttons under a training's timeline to make an earlier step the adapter, and "Train more".

Likeness often peaks before the last step. A run keeps the checkpoint and the adapter of
each step its timeline shows until the owner decides: "Use step N" makes step N's adapter
theirs and deletes the rest, "Keep step N (last)" keeps the final one. "Train more" builds
on whichever state is theirs, with as many extra steps as they ask for.

A choice waits while the member has a training queued or running: that training may be
building on one of these checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict

import discord
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.jobs import files
from bot.jobs.models import Job, JobKind, JobState, Owner

log = logging.getLogger(__name__)

CHOSEN_MARK = "✅"


def choice_view(job_id: int, choices: list[int] = (), last_step: int | None = None) -> discord.ui.View:
    """The buttons under a training's announcement: one per step to choose, then "Train more"."""
    view = discord.ui.View(timeout=None)
    for step in choices:
        view.add_item(UseStepButton(job_id, step, last=step == last_step))
    view.add_item(TrainMoreButton(job_id))
    return view


async def prune_other_runs(bot: DoppelBot, owner: Owner, keep_job: int) -> None:
    """A new adapter is the member's: the checkpoints of their earlier runs are no longer anyone's to choose."""
    finished = await bot.jobs.of_owner(owner, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    for job in finished:
        if job.kind is JobKind.TRAIN and job.id != keep_job:
            await asyncio.to_thread(files.prune_checkpoints, files.job_dir(bot.settings.jobs_dir, job.id))


class _RunButton(discord.ui.DynamicItem[discord.ui.Button], template=r"doppel:(?:use|more):(?P<job_id>\d+)"):
    """A button under one training's announcement, for its owner only. Dynamic: it works after a restart."""

    async def _job(self, interaction: discord.Interaction, job_id: int) -> Job | None:
        """The run, if the one pressing may act on it now; otherwise they are told why and None comes back."""
        bot: DoppelBot = interaction.client
        job = await bot.jobs.get(job_id)
        if job is None:
            await interaction.response.send_message("This training no longer exists.", ephemeral=True)
            return None
        if job.owner != owner_of(interaction):
            await interaction.response.send_message(
                f"Only <@{job.owner.member_id}> can choose what happens to their adapter.", ephemeral=True
            )
            return None
        refusal = await _refusal(bot, job)
        if refusal:
            await interaction.response.send_message(refusal, ephemeral=True)
            return None
        return job


class UseStepButton(_RunButton, template=r"doppel:use:(?P<job_id>\d+):(?P<step>\d+)"):
    """Make a step of the run the owner's adapter."""

    def __init__(self, job_id: int, step: int, last: bool = False):
        label = f"Keep step {step} (last)" if last else f"Use step {step}"
        style = discord.ButtonStyle.primary if last else discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"doppel:use:{job_id}:{step}"))
        self.job_id, self.step = job_id, step

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item, match: re.Match):
        return cls(int(match["job_id"]), int(match["step"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog: Checkpoints = interaction.client.get_cog("Checkpoints")
        async with cog.lock(owner_of(interaction)):
            job = await self._job(interaction, self.job_id)
            if job is not None:
                await cog.choose(interaction, job, self.step)


class TrainMoreButton(_RunButton, template=r"doppel:more:(?P<job_id>\d+)"):
    """Ask how many more steps, then train on from the run's chosen state."""

    def __init__(self, job_id: int):
        super().__init__(
            discord.ui.Button(label="Train more", emoji="➕", style=discord.ButtonStyle.success,
                              custom_id=f"doppel:more:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item, match: re.Match):
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        job = await self._job(interaction, self.job_id)
        if job is not None:
            adapter = await interaction.client.members.adapter(job.owner)
            await interaction.response.send_modal(TrainMoreModal(adapter.steps, interaction.client.settings))


class TrainMoreModal(discord.ui.Modal, title="Train more"):
    def __init__(self, steps_now: int, settings):
        super().__init__(timeout=15 * 60)
        self.low, self.high = 10, settings.train_max_steps
        self.steps = discord.ui.TextInput(
            label=f"Extra steps ({self.low} to {self.high})",
            placeholder=f"your adapter has {steps_now} steps",
            default=str(max(self.low, min(self.high, steps_now // 2))),
            max_length=5,
            custom_id="doppel:more:steps",
        )
        self.add_item(self.steps)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        text = self.steps.value.strip()
        if not text.isdigit() or not self.low <= int(text) <= self.high:
            await interaction.response.send_message(
                f"“{text[:20]}” is not a number of steps: give a whole number from {self.low} to {self.high}.",
                ephemeral=True,
            )
            return
        await interaction.client.get_cog("Training").start_training(interaction, int(text))


async def _refusal(bot: DoppelBot, job: Job) -> str | None:
    adapter = await bot.members.adapter(job.owner)
    if adapter is None or adapter.job_id != job.id:
        return (
            "A newer training has replaced this run's adapter, so its steps can no longer be chosen; "
            "/train builds on your current one."
        )
    active = await bot.jobs.of_owner(job.owner, JobState.QUEUED, JobState.RUNNING)
    if any(j.kind is JobKind.TRAIN for j in active):
        return "You have a training queued or running; choose once it has finished (or /cancel it)."
    return None


class Checkpoints(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        self._locks: defaultdict[Owner, asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, owner: Owner) -> asyncio.Lock:
        """One choice at a time per member: two quick presses must not prune each other's step."""
        return self._locks[owner]

    async def choose(self, interaction: discord.Interaction, job: Job, step: int) -> None:
        """Make `step` of the run the owner's adapter, and delete the run's other checkpoints."""
        owner = job.owner
        out = files.job_dir(self.bot.settings.jobs_dir, job.id)
        source = files.step_adapter_file(out, step)
        if not await asyncio.to_thread(source.is_file):
            adapter = await self.bot.members.adapter(owner)
            await interaction.response.send_message(
                f"That choice is closed: you chose step {adapter.steps}, and the other steps were deleted then.",
                ephemeral=True,
            )
            return
        await interaction.response.defer()  # copying a full-size adapter may take a moment
        target = self.bot.members.adapter_file(owner)
        try:
            await asyncio.to_thread(files.copy, source, target)
        except OSError as exc:  # a full disk: the copy is written aside and renamed, so nothing changed
            log.error("could not copy step %s of job %s: %s", step, job.id, exc)
            await interaction.followup.send(
                "I could not save your choice (the bot's disk is full or cannot be written); nothing changed. "
                "Tell an admin, then try again.",
                ephemeral=True,
            )
            return
        state = files.state_file(out, step)
        await self.bot.members.set_adapter(owner, target, job.id, step, state=state)
        await asyncio.to_thread(files.prune_checkpoints, out, step)
        text = _without_choice(interaction.message.content) + (
            f"\n{CHOSEN_MARK} <@{owner.member_id}> chose **step {step}**: /imagine uses it from now on, "
            "and “Train more” builds on it. The other steps' checkpoints are deleted."
        )
        await interaction.edit_original_response(
            content=text, view=choice_view(job.id), allowed_mentions=discord.AllowedMentions.none()
        )


def _without_choice(content: str) -> str:
    return "\n".join(line for line in content.splitlines() if not line.startswith(CHOSEN_MARK))


async def setup(bot: DoppelBot) -> None:
    bot.add_dynamic_items(UseStepButton, TrainMoreButton)
    await bot.add_cog(Checkpoints(bot))
