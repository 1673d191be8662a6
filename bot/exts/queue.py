"""/queue: what runs and waits, the member's own jobs with their places and estimated starts, the others as counts.

The estimates are bot.jobs.estimates' (the same as the progress message's time left), from the pace the
runner measured since it started; until something of a kind has run, that kind has none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.jobs import estimates
from bot.jobs.models import Job
from bot.members.owner import Owner
from bot.ui.progress import duration
from contract import JobKind, JobState

NO_ESTIMATE = "no estimate yet"


@dataclass(frozen=True)
class Line:
    """One kind's jobs: running, then waiting in the order they start, with each one's estimated start."""

    kind: JobKind
    running: list[tuple[Job, float | None]]  # with the seconds it still takes
    waiting: list[tuple[Job, float | None]]  # with the seconds until it starts


async def lines(bot: DoppelBot) -> list[Line]:
    runner, rates = bot.runner, bot.runner.pace.rates()
    result = []
    for kind, workers in ((JobKind.GENERATE, runner.generators), (JobKind.TRAIN, runner.trainers)):
        running = await bot.jobs.in_state(JobState.RUNNING, kind=kind)
        queued = await bot.jobs.in_state(JobState.QUEUED, kind=kind)
        places = {job.id: await runner.position(job.id) or 0 for job in queued}
        waiting = sorted((job for job in queued if places[job.id]), key=lambda job: places[job.id])
        now = time.monotonic()
        left = [estimates.job_left(job, rates, runner.pace.own_step_s(job.id),
                                   now - runner.timings.get(job.id, {}).get("started", now)) for job in running]
        starts = estimates.starts(left, [estimates.job_left(job, rates) for job in waiting],
                                  sum(1 for w in workers if w.ready))
        result.append(Line(kind, list(zip(running, left, strict=True)), list(zip(waiting, starts, strict=True))))
    return result


def _about(seconds: float | None, what: str) -> str:
    if seconds is None:
        return NO_ESTIMATE
    return f"{what} in a moment" if seconds < 1 else f"{what} in about {duration(seconds)}"


def _name(job: Job) -> str:
    if job.kind is JobKind.TRAIN:
        return "Your training"
    count = job.picture_request.count
    return f"Your picture{'s' if count != 1 else ''} “{discord.utils.escape_markdown(job.picture_request.prompt[:50])}”"


def describe(line_list: list[Line], owner: Owner, gpu_ready: bool) -> str:
    """The member's jobs, each with its place and estimate, then everyone else's as counts."""
    mine, others = [], []
    for line in line_list:
        noun = "training" if line.kind is JobKind.TRAIN else "picture request"
        for job, left in line.running:
            if job.owner == owner:
                step = job.progress
                where = f", step {step.step} of {step.total}" if step and step.step is not None else ""
                mine.append(f"{_name(job)}: running{where}, {_about(left, 'ends')}")
        for place, (job, start) in enumerate(line.waiting, start=1):
            if job.owner == owner:
                mine.append(f"{_name(job)}: number {place} of {len(line.waiting)} waiting, {_about(start, 'starts')}")
        running = sum(1 for job, _ in line.running if job.owner != owner)
        waiting = sum(1 for job, _ in line.waiting if job.owner != owner)
        others.append(f"{running} {noun}{'s' if running != 1 else ''} running and {waiting} waiting")
    text = "\n".join(mine) if mine else "You have nothing queued or running."
    text += "\nEveryone else: " + "; ".join(others) + "."
    if not gpu_ready:
        text += "\nNo GPU is up right now; the queue moves when one joins."
    return text


class Queue(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot

    @app_commands.command(name="queue", description="What is running and waiting, and when yours start")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        text = describe(await lines(self.bot), owner_of(interaction), self.bot.runner.gpu_ready)
        await interaction.response.send_message(text[:1900], ephemeral=True)


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Queue(bot))
