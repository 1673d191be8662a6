"""Choosing the moment: buttons under a training's timeline to make an earlier step the adapter, and "Train more".

Likeness often peaks before the last step. A run keeps the checkpoint and the adapter of
each step its timeline shows until the owner decides: "Use step N" makes step N's adapter
theirs and deletes the rest, "Keep step N (last)" keeps the final one. "Train more" builds
on whichever state is theirs, with as many extra steps as they ask for. What a choice
changes is the adapter service's (`bot.adapters.choose`); these are only its buttons.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import discord

from bot.app import DoppelBot, owner_of, roles
from bot.exts.training.starting import start_training
from bot.jobs.models import Job
from bot.members.quotas import sentence
from bot.styles.store import Style, is_style_owner
from contract.limits import MEMBER_STEPS

CHOSEN_MARK = "✅"


def choice_view(
    job_id: int, choices: Sequence[int] = (), last_step: int | None = None, recommended: int | None = None
) -> discord.ui.View:
    """The buttons under a training's announcement: one per step to choose, the recommended one first (the
    step most like its owner that still follows the prompts), then "Train more"."""
    view = discord.ui.View(timeout=None)
    for step in sorted(choices, key=lambda s: s != recommended):  # stable: the rest stay in step order
        view.add_item(UseStepButton(job_id, step, last=step == last_step, recommended=step == recommended))
    view.add_item(TrainMoreButton(job_id))
    return view


class _RunButton(discord.ui.DynamicItem[discord.ui.Button], template=r"doppel:(?:use|more):(?P<job_id>\d+)"):
    """A button under one training's announcement, for its owner only (a style's: for the members of its server
    who may train styles). Dynamic: it works after a restart."""

    async def _job(self, interaction: discord.Interaction, job_id: int) -> Job | None:
        """The run, if the one pressing owns it; otherwise they are told why and None comes back."""
        bot: DoppelBot = interaction.client  # type: ignore[assignment]
        job = await bot.jobs.get(job_id)
        if job is None:
            await interaction.response.send_message("This training no longer exists.", ephemeral=True)
            return None
        if is_style_owner(job.owner):
            denied = await bot.access.style_refusal(
                owner_of(interaction), roles(interaction.user), interaction.permissions.manage_guild
            ) if job.owner.guild_id == interaction.guild_id else "this style is another server's"
            if denied is not None:
                await interaction.response.send_message(sentence(denied), ephemeral=True)
                return None
        elif job.owner != owner_of(interaction):
            await interaction.response.send_message(
                f"Only <@{job.owner.member_id}> can choose what happens to their adapter.", ephemeral=True
            )
            return None
        return job


class UseStepButton(_RunButton, template=r"doppel:use:(?P<job_id>\d+):(?P<step>\d+)"):
    """Make a step of the run the owner's adapter."""

    def __init__(self, job_id: int, step: int, last: bool = False, recommended: bool = False):
        label = f"Keep step {step}" if last else f"Use step {step}"
        notes = [word for word, said in (("recommended", recommended), ("last", last)) if said]
        label += f" ({', '.join(notes)})" if notes else ""
        style = discord.ButtonStyle.primary if recommended or last else discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"doppel:use:{job_id}:{step}"))
        self.job_id, self.step = job_id, step

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item, match: re.Match):
        return cls(int(match["job_id"]), int(match["step"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: DoppelBot = interaction.client  # type: ignore[assignment]
        job = await self._job(interaction, self.job_id)
        if job is None:
            return
        await interaction.response.defer()  # copying a full-size adapter may take a moment
        chosen = await bot.adapters.choose(job, self.step)
        if chosen.refusal:
            await interaction.followup.send(chosen.refusal, ephemeral=True)
            return
        who = interaction.user.id if is_style_owner(job.owner) else job.owner.member_id
        text = _without_choice(interaction.message.content if interaction.message else "") + (
            f"\n{CHOSEN_MARK} <@{who}> chose **step {chosen.step}**: /imagine uses it from now on, "
            "and “Train more” builds on it. The other steps' checkpoints are deleted."
        )
        await interaction.edit_original_response(
            content=text, view=choice_view(job.id), allowed_mentions=discord.AllowedMentions.none()
        )


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
        bot: DoppelBot = interaction.client  # type: ignore[assignment]
        job = await self._job(interaction, self.job_id)
        if job is None:
            return
        adapter = await bot.members.adapter(job.owner)
        if adapter is None or adapter.job_id != job.id:
            await interaction.response.send_message(
                "A newer training has replaced this run's adapter; /train builds on your current one.", ephemeral=True
            )
            return
        style = await bot.styles.of_owner(job.owner)
        await interaction.response.send_modal(TrainMoreModal(adapter.steps, bot.settings.train_max_steps, style))


class TrainMoreModal(discord.ui.Modal, title="Train more"):
    def __init__(self, steps_now: int, max_steps: int, style: Style | None = None):
        super().__init__(timeout=15 * 60)
        self.style = style  # a style's run trains the style on; start_training checks the asker again
        self.low, self.high = MEMBER_STEPS.low, min(MEMBER_STEPS.high, max_steps)
        self.steps: discord.ui.TextInput = discord.ui.TextInput(
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
        bot: DoppelBot = interaction.client  # type: ignore[assignment]
        await start_training(bot, interaction, int(text), style=self.style)


def _without_choice(content: str) -> str:
    return "\n".join(line for line in content.splitlines() if not line.startswith(CHOSEN_MARK))
