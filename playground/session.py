"""Starting and stopping the playground: the stand-in, the page, then the bot (which takes longest: Ray
starts and its workers load the model), so the page is there at once and says when the bot comes online."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.app import DoppelBot
from bot.settings import BotSettings
from contract.limits import MIN_PHOTOS_TO_TRAIN
from fake_discord import FakeDiscord, running_bot
from fake_discord.gateway import HEARTBEAT_INTERVAL_MS
from fake_discord.openapi import SPEC_PATH, Unchecked, load_if_present

from .cast import Cast
from .feed import Feed
from .web import Page

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 600  # a first start builds the tiny model; a real base may download for longer


@dataclass
class Playground:
    fake: FakeDiscord
    cast: Cast
    feed: Feed
    url: str
    bot: asyncio.Task[None]

    async def online(self, timeout: float) -> None:
        """Wait until the bot has connected; raises what stopped it from starting."""
        waiter = asyncio.create_task(self.feed.came_online.wait())
        done, _ = await asyncio.wait({waiter, self.bot}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.bot in done:
            self.bot.result()
            raise RuntimeError(self.feed.status)
        if waiter not in done:
            raise TimeoutError(f"the bot was not online within {timeout} s: {self.feed.status}")


@contextlib.asynccontextmanager
async def playground(
    settings_for: Callable[[FakeDiscord, int], BotSettings], base_note: str, port: int = 0,
    heartbeat_ms: int | None = None, host: str = "127.0.0.1",
) -> AsyncIterator[Playground]:
    """Everything started; stopped in reverse order on exit. `settings_for(fake, guild id)` gives the bot's
    settings."""
    spec = load_if_present()
    if isinstance(spec, Unchecked):
        log.warning("Discord's OpenAPI file is not at %s: the stand-in does not check the bot's requests", SPEC_PATH)
    fake = FakeDiscord(spec=spec, heartbeat_interval_ms=heartbeat_ms or HEARTBEAT_INTERVAL_MS).start()
    page: Page | None = None
    bot: asyncio.Task[None] | None = None
    stop = asyncio.Event()
    try:
        cast = Cast.build(fake)
        feed = Feed(fake, cast)
        settings = settings_for(fake, cast.guild.id)
        fewer = " (the real bot: 10 of 512 px by default)" if settings.min_photos_to_train < MIN_PHOTOS_TO_TRAIN else ""
        photos = (
            f" /train needs {settings.min_photos_to_train} photos with a face, of at least {settings.min_photo_side} px"
            f" on their shorter side{fewer}."
        )
        page = Page(fake, cast, feed, base_note + photos)
        url = await page.start(port, host)
        bot = asyncio.create_task(_run_bot(fake, settings, feed, stop), name="playground bot")
        yield Playground(fake, cast, feed, url, bot)
    finally:
        stop.set()
        if bot is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await bot
        if page is not None:
            await page.stop()
        fake.close()


async def _run_bot(fake: FakeDiscord, settings: BotSettings, feed: Feed, stop: asyncio.Event) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        async with running_bot(fake, DoppelBot(settings), ready_timeout=READY_TIMEOUT_S, fail_on_bot_errors=False):
            feed.set_status("online", online=True)
            log.info("doppel is online in the playground")
            await stop.wait()
    except Exception as failed:
        log.exception("the bot stopped")
        feed.set_status(f"stopped: {failed}")
        raise
    feed.set_status("stopped")


@contextlib.contextmanager
def data_folder(kept: Path | None):
    """The bot's DATA_DIR: the folder given (kept), else a new temporary one deleted at the end.

    A temporary one holds the temporary files of this process and of the Ray workers it starts too (TMPDIR:
    the generator's adapter copies, torch's compile cache), so that nothing of the playground outlives it.
    Ray's own session folder (its logs) stays where Ray keeps it (RAY_TMPDIR, else the usual TMPDIR): Ray
    writes it again as the process ends, and its sockets' paths must stay short.
    """
    if kept is not None:
        yield kept
        return
    made = Path(tempfile.mkdtemp(prefix="doppel-playground-"))
    before = {name: os.environ.get(name) for name in ("TMPDIR", "RAY_TMPDIR")}
    os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
    (made / "tmp").mkdir()
    os.environ["TMPDIR"] = str(made / "tmp")
    tempfile.tempdir = None  # read TMPDIR again
    try:
        yield made
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        tempfile.tempdir = None
        shutil.rmtree(made, ignore_errors=True)
