"""/token, /share, /unshare: a member's likeness is theirs to lend and to take back (and /forget, bot.exts.forget)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.members.consent import stopped_sharing
from bot.members.store import EVERYONE


class Sharing(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot

    @app_commands.command(name="token", description="Your trigger token and how to use it")
    @app_commands.guild_only()
    async def token(self, interaction: discord.Interaction) -> None:
        owner = owner_of(interaction)
        token = await self.bot.token_for(owner)
        adapter = await self.bot.members.adapter(owner)
        state = "Your adapter is trained." if adapter else "You have no adapter yet: add photos, then /train."
        await interaction.response.send_message(
            f"Your trigger token is `{token}`. It stays the same when you retrain. {state}\n"
            f"/imagine puts it in front of any prompt that names no one, e.g. /imagine `as a knight` draws "
            f"`{token}, as a knight`. Write it yourself to place it: `{token} and a dragon, oil painting`.",
            ephemeral=True,
        )

    @app_commands.command(name="share", description="Let a member, or everyone, draw you with /imagine")
    @app_commands.describe(who="A member, or @everyone")
    @app_commands.guild_only()
    async def share(self, interaction: discord.Interaction, who: discord.Member | discord.Role) -> None:
        owner = owner_of(interaction)
        grantee, name = self._grantee(interaction, who)
        if grantee == owner.member_id:
            await interaction.response.send_message("You can always draw yourself.", ephemeral=True)
            return
        await self.bot.token_for(owner)
        await self.bot.members.share(owner, grantee)
        if await self.bot.members.adapter(owner):
            text = f"{name} can now use your adapter in /imagine by mentioning you."
        else:
            text = f"You have no adapter yet: once /train has made one, {name} can use it in /imagine."
        await interaction.response.send_message(f"{text} /unshare takes it back.", ephemeral=True)

    @app_commands.command(name="unshare", description="Stop a member, or everyone, from drawing you")
    @app_commands.describe(who="A member, or @everyone")
    @app_commands.guild_only()
    async def unshare(self, interaction: discord.Interaction, who: discord.Member | discord.Role) -> None:
        grantee, name = self._grantee(interaction, who)
        owner = owner_of(interaction)
        removed = await self.bot.members.unshare(owner, grantee)
        text = f"{name} can no longer use your adapter." if removed else f"You had not shared with {name}."
        # Pictures of you that those who lost access asked for and are waiting for stop now, and they are told why.
        stopped = await self.bot.runner.refuse_pictures_of(
            owner, stopped_sharing(owner), still_allowed=lambda requester: self.bot.members.may_use(requester, owner)
        )
        if stopped:
            text += f" {len(stopped)} picture request(s) of you they were waiting for stopped."
        await interaction.response.send_message(text, ephemeral=True)

    @staticmethod
    def _grantee(interaction: discord.Interaction, who: discord.Member | discord.Role) -> tuple[int, str]:
        if isinstance(who, discord.Role):
            if who.id != interaction.guild_id:  # only @everyone: role membership changes behind our back
                raise app_commands.AppCommandError("share with a member or with @everyone, not a role")
            return EVERYONE, "Everyone in this server"
        return who.id, who.mention

    async def cog_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError):
        await interaction.response.send_message(f"I cannot do that: {error}.", ephemeral=True)


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Sharing(bot))
