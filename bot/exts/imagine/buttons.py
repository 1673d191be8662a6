"""The buttons under pictures: re-roll (same prompt, new seeds) and compare (beside the base model).

Dynamic items, so the buttons still work after a restart. Only the requester may press
them, and a press is a new request: the people in it must still share with them, and
their adapters are the ones they have now. A press is announced as "picture_button_pressed"
(interaction, job, changes to its request): the Imagine cog asks for the pictures, as for /imagine.
(The message with the pictures holds these buttons: asking here would close an import circle.)
"""

from __future__ import annotations

import re

import discord

from bot.app import DoppelBot, owner_of
from bot.jobs.models import Job


class _PictureButton(discord.ui.DynamicItem[discord.ui.Button], template=r"doppel:(?:reroll|compare):(?P<job_id>\d+)"):
    key = ""  # in the custom id
    verb = ""  # in "Only @ann can ... these pictures"
    label = ""
    emoji = ""

    def __init__(self, job_id: int, *, label: str = "", more: str = ""):
        """`more`: what the custom id says after the job (for a button of one of its pictures)."""
        super().__init__(
            discord.ui.Button(label=label or self.label, emoji=self.emoji, style=discord.ButtonStyle.secondary,
                              custom_id=f"doppel:{self.key}:{job_id}{more}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item, match: re.Match):
        return cls(int(match["job_id"]))

    def changes(self, job: Job) -> dict:
        raise NotImplementedError

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: DoppelBot = interaction.client  # type: ignore[assignment]
        job = await bot.jobs.get(self.job_id)
        if job is None or job.pictures is None:
            await interaction.response.send_message("These pictures are from a request that no longer exists.",
                                                    ephemeral=True)
            return
        if job.owner != owner_of(interaction):
            await interaction.response.send_message(
                f"Only <@{job.owner.member_id}> can {self.verb} these pictures.", ephemeral=True
            )
            return
        await interaction.response.defer(thinking=True)
        bot.dispatch("picture_button_pressed", interaction, job, self.changes(job))


class RerollButton(_PictureButton, template=r"doppel:reroll:(?P<job_id>\d+)"):
    """Same prompt, new seeds."""

    key, verb, label, emoji = "reroll", "re-roll", "Re-roll", "🎲"

    def changes(self, job: Job) -> dict:
        return {"seed": None}


class CompareButton(_PictureButton, template=r"doppel:compare:(?P<job_id>\d+)"):
    """The first picture again, beside what the base model makes of the same prompt and seed."""

    key, verb, label, emoji = "compare", "compare", "Compare with the base model", "🔍"

    def changes(self, job: Job) -> dict:
        pictures = job.pictures
        assert pictures is not None  # noqa: S101  (the callback has answered already when there are none)
        return {"seed": pictures.images[0].seed, "count": 1, "compare": True}
