"""`python -m bot playground`: start it, print where to look, run until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
from pathlib import Path

from bot.serve import without_rays_signal_handler
from bot.settings import BotSettings
from fake_discord import FakeDiscord

from .setup import bot_settings, use_base

NOISE = (
    "Base model: tiny, a random model built offline: its pictures are noise, but everything else is real "
    "(photo checks, training, the adapter, generation). With a GPU, <code>--base black-forest-labs/FLUX.1-dev</code> "
    "shows real results."
)


def main(
    port: int, base: str, gpus: float | None, data_dir: Path | None, log_level: str, heartbeat_ms: int | None,
    host: str = "127.0.0.1",
) -> int:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    use_base(base)
    without_rays_signal_handler()  # SIGTERM stops the playground as Ctrl-C does, not with Ray's stack dump
    note = NOISE if base == "tiny" else f"Base model: <code>{base}</code>."
    if host != "127.0.0.1":
        print(
            f"warning: the playground listens on {host}: anyone who can reach this machine's port {port} can act in "
            "it as any member (upload photos, train, draw); it has no login",
            file=sys.stderr,
        )
    try:
        asyncio.run(_serve(port, host, gpus, data_dir, note, heartbeat_ms))
    except KeyboardInterrupt:
        pass
    except OSError as failed:
        if failed.errno != errno.EADDRINUSE:
            raise
        print(f"error: port {port} is in use on {host}; --port picks another (0: any free one)", file=sys.stderr)
        return 2
    except Exception as failed:  # logged in full where it happened
        print(f"error: the playground stopped: {failed}", file=sys.stderr)
        return 1
    return 0


async def _serve(
    port: int, host: str, gpus: float | None, data_dir: Path | None, note: str, heartbeat_ms: int | None
) -> None:
    from .session import data_folder, playground  # imports Ray: after without_rays_signal_handler

    with data_folder(data_dir) as folder:
        def settings_for(fake: FakeDiscord, guild_id: int) -> BotSettings:
            return bot_settings(fake, guild_id, folder, gpus)

        async with playground(settings_for, note, port, heartbeat_ms, host) as running:
            print(f"doppel playground: open {running.url}  (Ctrl-C stops it; data in {folder})", flush=True)
            stop = asyncio.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().add_signal_handler(signum, stop.set)
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running.bot, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if running.bot.done():
                running.bot.result()  # what stopped the bot
