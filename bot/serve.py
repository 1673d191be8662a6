"""Running the bot as a process: start, stop gracefully on SIGTERM or SIGINT, and exit within a bound.

A stop closes Discord, stops following jobs, lets running training write a checkpoint (it resumes
from it at the next start; with RAY_ADDRESS it goes on and is reattached instead), checkpoints the
database's WAL, and returns: within STOP_GRACE_S + STOP_MARGIN_S (the container's stop timeout
must be longer: README, Operations). Exit codes: 0 after a stop, 3 when the database refuses to
open (it lost contents; the message says what to do), 1 on any other unrecoverable error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from bot.db import DatabaseLost
from bot.settings import BotSettings

log = logging.getLogger(__name__)

STOP_MARGIN_S = 10.0  # beyond the training's grace: Discord's close, the WAL checkpoint, Ray's shutdown
DATABASE_LOST = 3
NO_RAY_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"


def run(settings: BotSettings) -> int:
    without_rays_signal_handler()
    try:
        asyncio.run(serve(settings))
    except DatabaseLost as lost:
        print(f"error: {lost}", file=sys.stderr)
        return DATABASE_LOST
    return 0


def without_rays_signal_handler() -> None:
    """Import Ray without its C++ failure-signal handler, which it installs on import: it would turn the SIGTERM
    of a graceful stop into an abort (exit -6) once the bot's own handler has run. Ray's worker processes are
    started without the variable, so they keep theirs (stack traces of crashes)."""
    previous = os.environ.get(NO_RAY_HANDLER)
    os.environ[NO_RAY_HANDLER] = "1"
    try:
        import ray  # noqa: F401
    finally:
        if previous is None:
            del os.environ[NO_RAY_HANDLER]
        else:
            os.environ[NO_RAY_HANDLER] = previous


async def serve(settings: BotSettings) -> None:
    from bot.app import DoppelBot

    assert settings.discord_token is not None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bot = DoppelBot(settings)
    async with bot:
        running = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            log.info("stopping: a signal asked for it")
            try:
                await asyncio.wait_for(bot.close(), settings.stop_grace_s + STOP_MARGIN_S)
            except TimeoutError:
                log.error("the stop took longer than %g s; exiting anyway", settings.stop_grace_s + STOP_MARGIN_S)
            running.cancel()
        else:
            stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    log.info("stopped")
