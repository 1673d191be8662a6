"""/admin: the queue, the limits, blocking a member, and removing a member's data, for members with Manage Server."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot
from bot.members.erasure import describe
from bot.members.owner import Owner
from contract import JobState


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Admin(commands.GroupCog, group_name="admin", group_description="For members who can manage the server"):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # Default permissions can be changed by the server; check the real one too.
        if not interaction.permissions.manage_guild:
            await interaction.response.send_message("This needs the Manage Server permission.", ephemeral=True)
            return False
        return True

    @app_commands.command(name="queue", description="Jobs queued and running in this server")
    async def queue(self, interaction: discord.Interaction) -> None:
        jobs = [
            j for j in await self.bot.jobs.in_state(JobState.RUNNING, JobState.QUEUED)
            if j.owner.guild_id == interaction.guild_id
        ]
        lines = []
        for job in jobs:
            progress = job.progress
            where = f"step {progress.step}/{progress.total}" if progress and progress.step is not None else ""
            position = await self.bot.runner.position(job.id)
            lines.append(
                f"#{job.id} {job.kind.value} by <@{job.owner.member_id}>: {job.state.value}"
                + (f", number {position}" if position else "") + (f", {where}" if where else "")
            )
        await interaction.response.send_message("\n".join(lines)[:1900] or "The queue is empty.", ephemeral=True,
                                                allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="purge", description="Delete all of a member's photos, adapters and jobs")
    @app_commands.describe(member="Whose data to delete", user_id="Or the user id of someone no longer in the server")
    async def purge(self, interaction: discord.Interaction, member: discord.Member | None = None,
                    user_id: str | None = None) -> None:
        if (member is None) == (user_id is None) or (user_id is not None and not user_id.strip().isdigit()):
            await interaction.response.send_message(
                "Name either a member or a user id (the number Developer Mode copies), one of them.", ephemeral=True
            )
            return
        target = member.id if member is not None else int(user_id or 0)
        await interaction.response.defer(ephemeral=True, thinking=True)
        forgotten = await self.bot.forget_member(Owner(interaction.guild_id or 0, target))
        await interaction.followup.send(f"Deleted for <@{target}>: {describe(forgotten, f'<@{target}>')}.",
                                        ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="block", description="Stop a member from training and asking for pictures here")
    @app_commands.describe(member="Whom to block")
    async def block(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Their jobs waiting or running are stopped (one that starts meanwhile is refused by the runner's own
        check); their photos and adapter stay."""
        if member.id == interaction.user.id:
            await interaction.response.send_message("You cannot block yourself.", ephemeral=True)
            return
        owner = Owner(interaction.guild_id or 0, member.id)
        done = await self.bot.access.block(owner, by=interaction.user.id)
        stopped = [job for job in await self.bot.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
                   if await self.bot.runner.cancel(job.id) is not None]
        text = (f"Blocked <@{member.id}>: they can no longer train or ask for pictures here"
                + (f"; {len(stopped)} of their requests stopped" if stopped else "")
                + ". /admin unblock lifts it." if done else f"<@{member.id}> is blocked already.")
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="unblock", description="Let a blocked member train and ask for pictures again")
    @app_commands.describe(member="Whom to unblock")
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        done = await self.bot.access.unblock(Owner(interaction.guild_id or 0, member.id))
        text = f"Unblocked <@{member.id}>." if done else f"<@{member.id}> is not blocked."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="limits", description="The limits members have")
    async def limits(self, interaction: discord.Interaction) -> None:
        s = self.bot.settings
        await interaction.response.send_message(
            f"Photos per member: {s.max_photos} (at least {s.min_photos_to_train} to train, "
            f"{s.min_photo_side} px short side, {s.max_upload_mb} MB a file)\n"
            f"Trainings per member per day: {s.trainings_per_day}, {s.train_default_steps} steps by default, "
            f"at most {s.train_max_steps}\n"
            f"Pictures per member: {s.pictures_per_hour} an hour, {s.pictures_per_day} a day"
            + (f", {s.request_cooldown_s:g} s between requests" if s.request_cooldown_s else "") + "\n"
            f"Who may train: {_roles(s.train_roles)}; who may draw: {_roles(s.draw_roles)}\n"
            f"Requests waiting or running per member: {s.max_active_jobs_per_member}\n"
            f"GPU sharing: {self.bot.runner.policy}; pictures wait at most {s.generation_max_wait_s:g} s for training\n"
            "Change them in the bot's environment (.env) and restart it.",
            ephemeral=True,
        )


def _roles(named: list[str]) -> str:
    return "members with " + ", ".join(f"`{name}`" for name in named) if named else "everyone"


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Admin(bot))
