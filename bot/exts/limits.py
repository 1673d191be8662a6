"""/limits: a member's own use against each limit, and whether they may train and draw here."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of, roles
from bot.members.quotas import sentence
from contract import JobKind


class Limits(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot

    @app_commands.command(name="limits", description="How much you have asked for, and what you may ask for")
    @app_commands.guild_only()
    async def limits(self, interaction: discord.Interaction) -> None:
        owner = owner_of(interaction)
        lines = await self.bot.quotas.use(owner)
        for kind in (JobKind.TRAIN, JobKind.GENERATE):
            refusal = await self.bot.access.refusal_for(owner, kind, roles(interaction.user))
            if refusal is not None and sentence(refusal) not in lines:  # a block refuses both alike
                lines.append(sentence(refusal))
        await interaction.response.send_message("\n".join(lines), ephemeral=True)


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Limits(bot))
