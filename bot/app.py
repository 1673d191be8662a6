"""The discord.py bot object: owns the database, the job runner, and loads one cog per feature area."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import aiohttp
import discord
from discord.ext import commands

from bot import backups, health
from bot.db import Database
from bot.jobs.models import Job
from bot.jobs.runner import JobRunner
from bot.jobs.store import JobStore
from bot.members import storage
from bot.members.access import Access, Role, RolesUnknown
from bot.members.adapters import AdapterService
from bot.members.consent import Consent
from bot.members.erasure import Forgotten, forget_member
from bot.members.owner import Owner
from bot.members.quotas import Quotas
from bot.members.store import MemberStore
from bot.members.tokens import TokenChecker, new_token
from bot.settings import BotSettings
from bot.styles.store import Style, StyleStore
from contract import JobKind

log = logging.getLogger(__name__)

UNKNOWN_MESSAGE = 10008  # Discord's error code for a message that is not there (any more)

EXTENSIONS = (
    "bot.exts.dataset",
    "bot.exts.training",
    "bot.exts.style",
    "bot.exts.imagine",
    "bot.exts.sharing",
    "bot.exts.forget",
    "bot.exts.queue",
    "bot.exts.limits",
    "bot.exts.adapter",
    "bot.exts.admin",
    "bot.exts.help",
)


NOT_SERVED = "This doppel serves other servers; it keeps nothing for this one."


class DoppelTree(discord.app_commands.CommandTree):
    """Errors end in a message to the member, never in silence."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only servers on ALLOWED_GUILDS are served: elsewhere every command gets the same answer, before
        any cog's code runs, so nothing is stored. A DM is judged by the servers the member uses doppel in."""
        bot = interaction.client
        if not isinstance(bot, DoppelBot) or await bot.serves(interaction.guild_id, interaction.user.id):
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        else:
            await interaction.response.send_message(NOT_SERVED, ephemeral=True)
        return False

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
    styles: StyleStore
    adapters: AdapterService
    consent: Consent
    access: Access
    quotas: Quotas
    runner: JobRunner
    token_checker: TokenChecker

    def __init__(self, settings: BotSettings, **options):
        intents = discord.Intents.default()  # DMs included; no privileged intents needed
        # No message pings anyone unless it says whom: those that mean to name their users in allowed_mentions.
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, help_command=None, tree_cls=DoppelTree, **options
        )
        self.settings = settings
        self._heartbeat: asyncio.Task | None = None
        self._housekeeping: asyncio.Task | None = None
        self._safekeeping: asyncio.Task | None = None
        self._token_lock = asyncio.Lock()
        self._closing = False

    async def login(self, token: str) -> None:
        # discord.py's own connector has no limit: a burst of 200 commands opened 200 connections (200 TLS
        # handshakes on Discord) before any acknowledgement went out; queued on a few kept open, the burst's
        # p99 fell from about 220 to 180 ms on the stand-in (bench/interactions.py).
        self.http.connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.settings.discord_connections)
        await super().login(token)

    async def captions_written(self, job: Job, captions: dict[str, str]) -> None:
        """A training's worker captioned photos that had none: the member's photos get them (see and edit them)."""
        # A run's copy names each photo by its number (bot/exts/training/starting.py, `_snapshot`); numbers hold
        # still while a training of the member's is queued or running (/dataset remove and clear wait for it).
        by_number = {int(Path(name).stem): text for name, text in captions.items() if Path(name).stem.isdigit()}
        await self.members.fill_captions(job.owner, by_number)

    async def setup_hook(self) -> None:
        self.db = await Database.open(self.settings.database_file)
        self.jobs = JobStore(self.db)
        self.members = MemberStore(self.db, self.settings.data_dir)
        self.styles = StyleStore(self.db)
        self.adapters = AdapterService(self.members, self.jobs, self.settings.jobs_dir)
        self.consent = Consent(self.members, self.adapters, self.styles)
        self.access = Access(self.db, self.roles_of, self.settings.train_roles, self.settings.draw_roles,
                             self.settings.style_roles, self.manages_guild)
        self.quotas = Quotas(self.jobs, self.settings)
        # Consent is checked as each picture starts, and before it is kept; access (blocks, roles) as any job starts.
        self.runner = JobRunner(self.jobs, self.settings, consent=self.consent, captions=self, access=self.access)
        # First among a training's follow-ups: the announcement (a cog's) shows an adapter that is theirs.
        self.runner.followups.register(JobKind.TRAIN, "adopt_adapter", self.adapters.adopt)
        self.token_checker = await asyncio.to_thread(
            TokenChecker.for_base, self.settings.base_model, self.settings.model_cache_dir, self.settings.hub_token
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
        if not self.settings.allowed_guilds:
            log.warning("ALLOWED_GUILDS is empty: doppel serves any server it is invited to")
        self._safekeeping = asyncio.create_task(backups.keep_safe(self.db, self.settings))
        self._housekeeping = asyncio.create_task(storage.keep_clean(
            self.db, self.settings.data_dir, self.settings.jobs_dir, self.settings.picture_retention_days
        ))

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

    async def create_style(self, guild_id: int, name: str, created_by: int) -> Style:
        """A new style of the server, with a new trigger token as a member gets. Raises ValueError (the member's
        words) when the name is bad or taken."""
        async with self._token_lock:  # its token must be no one else's, as a member's first upload's
            taken = await self.members.all_tokens()
            token = await asyncio.to_thread(new_token, taken, self.token_checker)
            return await self.styles.create(guild_id, name, created_by, token)

    async def manages_guild(self, owner: Owner) -> bool:
        """Whether the member holds Manage Server now, asked of Discord (as `roles_of`); False: not in the server."""
        member = await self._member_now(owner)
        return member is not None and member.guild_permissions.manage_guild

    async def roles_of(self, owner: Owner) -> list[Role] | None:
        """The member's roles now, asked of Discord: without the privileged members intent no role change reaches
        the cache, so a cached member's roles may be old. None: not in the server."""
        member = await self._member_now(owner)
        return None if member is None else roles(member)

    async def _member_now(self, owner: Owner) -> discord.Member | None:
        """The member as Discord has them now (not the cache); None: not in the server. RolesUnknown: no answer."""
        guild = self.get_guild(owner.guild_id)
        if guild is None:
            return None
        try:
            return await guild.fetch_member(owner.member_id)
        except discord.NotFound:
            return None
        except discord.HTTPException as failed:
            raise RolesUnknown(f"Discord answered {failed.status}") from None

    async def forget_member(self, owner: Owner) -> Forgotten:
        """Everything of a member deleted (/forget, /admin purge), the messages showing them included; returns
        what was, and which messages could not be deleted."""
        async with self.adapters.held(owner):  # no training's adapter is made theirs meanwhile
            return await forget_member(self.members, self.jobs, self.runner, self.settings.jobs_dir, owner,
                                       delete_message=self._delete_message, stop_showing=self._jobs_forgotten)

    async def forget_style(self, style: Style, by: int) -> Forgotten:
        """Everything of a style deleted (/style forget), as a member's: its pictures, adapter, jobs, the pictures
        drawn with it, their files and the messages showing them. `by`: who asked."""
        async with self.adapters.held(style.owner):
            return await forget_member(self.members, self.jobs, self.runner, self.settings.jobs_dir, style.owner,
                                       delete_message=self._delete_message, stop_showing=self._jobs_forgotten,
                                       reason=f"<@{by}> deleted the style `{style.name}`")

    async def _jobs_forgotten(self, job_ids: Sequence[int]) -> None:
        """Announced as "jobs_forgotten": each listener (`on_jobs_forgotten(job_ids)`) runs as a task of its own,
        begun while forget_member removes the files, before it deletes the jobs' messages: whoever edits them stops."""
        self.dispatch("jobs_forgotten", job_ids)

    async def _delete_message(self, channel_id: int, message_id: int) -> str | None:
        """None once the message is gone; else why it could not be deleted."""
        try:
            await self.get_partial_messageable(channel_id).get_partial_message(message_id).delete()
        except discord.NotFound as missing:
            if missing.code == UNKNOWN_MESSAGE:
                return None  # deleted already
            return "I cannot find that channel any more"
        except discord.Forbidden:
            return "I may no longer see that channel"
        except discord.HTTPException as failed:
            return f"Discord refused: {failed.status}"
        return None

    async def record_posted(self, message: discord.Message, job: Job, shows: Iterable[int] = ()) -> bool:
        """Note that a message the bot posted shows the job's owner and `shows` (member ids), so that /forget
        deletes it. Should the job have been forgotten meanwhile, the message goes at once (and False)."""
        members = {job.owner.member_id, *shows}
        try:
            recorded = await self.members.record_shown(
                message.channel.id, message.id, job.id, job.owner.guild_id, members
            )
        except Exception:
            if self._closing:  # the database closed under it: the bot is stopping
                return True
            raise
        if not recorded:
            with contextlib.suppress(discord.HTTPException):
                await message.delete()
        return recorded

    def serves_guild(self, guild_id: int) -> bool:
        allowed = self.settings.allowed_guilds
        return not allowed or guild_id in allowed

    async def serves(self, guild_id: int | None, member_id: int) -> bool:
        """Whether doppel works for this server; in a DM (no server), for a member it knows in a served one."""
        if not self.settings.allowed_guilds:
            return True
        if guild_id:
            return self.serves_guild(guild_id)
        return any(self.serves_guild(g) for g in await self.members.guilds_of(member_id))

    async def close(self) -> None:
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for task in (self._housekeeping, self._safekeeping):
            if task is not None:
                task.cancel()
        if hasattr(self, "runner"):
            # A local Ray ends with the bot: its training checkpoints now and resumes at the next start.
            # A separate Ray (RAY_ADDRESS) keeps training, and the next start reattaches.
            grace = self.settings.stop_grace_s if self.runner.transport.owns_ray else None
            await self.runner.stop(checkpoint_within=grace)
        if hasattr(self, "db"):  # closing checkpoints the WAL into the database file
            await self.db.close()
        await super().close()


def roles(member: discord.Member | discord.User) -> list[Role]:
    """A member's roles as doppel compares them (id, name); a user outside a server has none."""
    return [(role.id, role.name) for role in getattr(member, "roles", ())]


def owner_of(interaction: discord.Interaction) -> Owner:
    return Owner(interaction.guild_id or 0, interaction.user.id)
