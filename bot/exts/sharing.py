"""/token, /share, /unshare, /forget: a member's likeness is theirs to lend and to take back."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.members.consent import stopped_sharing
from bot.members.erasure import describe
from bot.members.owner import Owner
from bot.members.store import EVERYONE


class ForgetConfirm(discord.ui.View):
    def __init__(self, bot: DoppelBot, owner: Owner):
        super().__init__(timeout=120)
        self.bot, self.owner = bot, owner

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.owner.member_id  # in a DM too, where the server is the one they chose

    @discord.ui.button(label="Delete everything", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        forgotten = await self.bot.forget_member(self.owner)
        self.stop()
        await interaction.followup.send(f"Done. Deleted {describe(forgotten)}.", ephemeral=True)

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


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

    @app_commands.command(name="forget", description="Delete your photos, adapters, jobs, pictures and records")
    @app_commands.describe(server="Which server's data (in a DM to me, when you used me in several)")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def forget(self, interaction: discord.Interaction, server: str | None = None) -> None:
        owner = await self._forgetting(interaction, server)
        if owner is None:
            return
        photos = len(await self.bot.members.photos(owner))
        adapter = "your adapter" if await self.bot.members.adapter(owner) else "no adapter"
        where = "" if owner.guild_id == interaction.guild_id else f" in {self._server_name(owner.guild_id)}"
        await interaction.response.send_message(
            f"This deletes your {photos} photos{where}, {adapter}, your checkpoints, jobs and records, the pictures "
            "others made of you and my messages that show you, for good. Sure?",
            view=ForgetConfirm(self.bot, owner),
            ephemeral=True,
        )

    @forget.autocomplete("server")
    async def _servers(self, interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
        known = await self.bot.members.guilds_of(interaction.user.id)
        choices = [app_commands.Choice(name=self._server_name(g)[:100], value=str(g)) for g in known]
        return [c for c in choices if typed.lower() in c.name.lower() or typed in c.value][:25]

    def _server_name(self, guild_id: int) -> str:
        guild = self.bot.get_guild(guild_id)
        return guild.name if guild is not None else f"the server {guild_id} (I am no longer in it)"

    async def _forgetting(self, interaction: discord.Interaction, server: str | None) -> Owner | None:
        """Whose data /forget deletes: the member's in this server, or in the server they chose (a DM: the only
        one they used me in, else they must choose). None once they were told why not."""
        user_id = interaction.user.id
        known = await self.bot.members.guilds_of(user_id)
        listed = ", ".join(f"{self._server_name(g)} (`{g}`)" for g in known)
        text = None
        if server is not None:
            if server.strip().isdigit() and int(server) in known:
                return Owner(int(server), user_id)
            text = f"I keep nothing of yours for that server. I know you in: {listed}." if known else \
                "I keep nothing of yours in any server."
        elif interaction.guild_id is not None:
            return owner_of(interaction)
        elif len(known) == 1:
            return Owner(known[0], user_id)
        elif not known:
            text = "I keep nothing of yours in any server."
        else:
            text = f"You used me in several servers: {listed}. Run /forget again with `server` set to one of them."
        await interaction.response.send_message(text[:1900], ephemeral=True)
        return None


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Sharing(bot))
