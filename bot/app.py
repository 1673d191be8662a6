"""The discord.py bot object: owns the database, the job runner, and loads one cog per feature area."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord.ext import commands

from bot import health
from bot.db import Database
from bot.jobs.runner import JobRunner
from bot.jobs.store import JobStore
from bot.members.adapters import AdapterService
from bot.members.erasure import forget_member
from bot.members.owner import Owner
from bot.members.store import MemberStore
from bot.members.tokens import TokenChecker, new_token
from bot.settings import BotSettings
from contract import JobKind
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.exts.dataset",
    "bot.exts.training",
    "bot.exts.imagine",
    "bot.exts.sharing",
    "bot.exts.admin",
    "bot.exts.help",
)


class DoppelTree(discord.app_commands.CommandTree):
    """Errors end in a message to the member, never in silence."""

    async def on_error(self, interaction: discord.Interaction, error: discord.app_commands.AppCommandError) -> None:
        if isinstance(error, discord.app_commands.CheckFailure) and interaction.response.is_done():
            return  # the check already told the member why
        if isinstance(error, discord.app_commands.CheckFailure):
            text = "You cannot use this command here."
        else:
            log.error("command %s failed", interaction.command and interaction.command.qualified_name,
                      exc_info=error)
            text = "Something went wrong on my side; it has been logged. Please try again."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)


class DoppelBot(commands.Bot):
    db: Database
    jobs: JobStore
    members: MemberStore
    adapters: AdapterService
    runner: JobRunner
    token_checker: TokenChecker
    models: TrainerSettings  # the base model and memory mode every request names

    def __init__(self, settings: BotSettings, **options):
        intents = discord.Intents.default()  # DMs included; no privileged intents needed
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, help_command=None, tree_cls=DoppelTree, **options
        )
        self.settings = settings
        self._heartbeat: asyncio.Task | None = None
        self._token_lock = asyncio.Lock()

    async def setup_hook(self) -> None:
        self.db = await Database.open(self.settings.database_file)
        self.jobs = JobStore(self.db)
        self.members = MemberStore(self.db, self.settings.data_dir)
        self.adapters = AdapterService(self.members, self.jobs, self.settings.jobs_dir)
        self.runner = JobRunner(self.jobs, self.settings)
        # First among a training's follow-ups: the announcement (a cog's) shows an adapter that is theirs.
        self.runner.followups.register(JobKind.TRAIN, "adopt_adapter", self.adapters.adopt)
        self.models = TrainerSettings()
        hf_token = self.models.hf_token.get_secret_value() if self.models.hf_token else None
        self.token_checker = await asyncio.to_thread(
            TokenChecker.for_base, self.models.base_model, self.models.model_cache_dir, hf_token
        )
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        # After the cogs: they subscribe to jobs left running and register their follow-ups, before the
        # runner reattaches and reports on them (a job that finished while the bot was away is still announced).
        await self.runner.start()
        guild = discord.Object(self.settings.discord_guild_id) if self.settings.discord_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)
        self._heartbeat = asyncio.create_task(health.keep_beating(self.settings, self.is_ready))

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))

    async def token_for(self, owner: Owner) -> str:
        """The member's trigger token, made on first use."""
        token = await self.members.token(owner)
        if token is not None:
            return token
        async with self._token_lock:  # two first uploads at once must not make two tokens
            taken = await self.members.all_tokens()
            candidate = await asyncio.to_thread(new_token, taken, self.token_checker)
            return await self.members.add_member(owner, candidate)

    async def forget_member(self, owner: Owner) -> dict[str, int]:
        """Everything of a member deleted (/forget, /admin purge); returns what was."""
        return await forget_member(self.members, self.jobs, self.runner, self.settings.jobs_dir, owner)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if hasattr(self, "runner"):
            await self.runner.stop()
        if hasattr(self, "db"):
            await self.db.close()
        await super().close()


def owner_of(interaction: discord.Interaction) -> Owner:
    return Owner(interaction.guild_id or 0, interaction.user.id)
