"""The discord.py bot object. Feature areas arrive as cogs, one per extension."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord.ext import commands

from bot import health
from bot.settings import BotSettings

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = ()  # cogs are added here as the feature areas land


class DoppelBot(commands.Bot):
    def __init__(self, settings: BotSettings):
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
        self.settings = settings
        self._heartbeat: asyncio.Task | None = None

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self._heartbeat = asyncio.create_task(health.keep_beating(self.settings, self.is_ready))

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await super().close()
