"""Running the bot as a process: start, stop gracefully on SIGTERM or SIGINT, and exit within a bound.

A stop closes Discord, stops following jobs, lets running training write a checkpoint (it resumes
from it at the next start; with RAY_ADDRESS it goes on and is reattached instead), checkpoints the
database's WAL, and returns: within STOP_GRACE_S + STOP_MARGIN_S (the container's stop timeout
must be longer: README, Operations). A start that cannot go on ends in one sentence and its own exit code
(bot/exit_codes.py): an unusable database, a token Discord refuses, a Discord it cannot reach; any other
unrecoverable error is a traceback and exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

import aiohttp
import discord

from bot import exit_codes
from bot.db import DatabaseLost
from bot.settings import BotSettings

log = logging.getLogger(__name__)

STOP_MARGIN_S = 10.0  # beyond the training's grace: Discord's close, the WAL checkpoint, Ray's shutdown
NO_RAY_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"


def run(settings: BotSettings) -> int:
    without_rays_signal_handler()
    try:
        asyncio.run(serve(settings))
    except DatabaseLost as lost:
        return _refused(str(lost), exit_codes.NEEDS_A_PERSON)
    except discord.LoginFailure:
        return _refused("Discord refused the bot's token (DISCORD_TOKEN): copy it again from the Bot page of your "
                        "app at https://discord.com/developers/applications (Reset Token), put it in .env, then "
                        "start the bot again.", exit_codes.TOKEN_REFUSED)
    except aiohttp.ClientConnectorError as unreachable:  # DNS or connection, before the first answer
        why = unreachable.os_error.strerror or unreachable.os_error
        return _refused(f"Discord cannot be reached ({unreachable.host}: {why}): check this machine's network and "
                        f"DNS; a restart after a pause tries again.", exit_codes.DISCORD_UNREACHABLE)
    return exit_codes.STOPPED


def _refused(sentence: str, code: int) -> int:
    print(f"error: {sentence}", file=sys.stderr)
    return code


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

    assert settings.discord_token is not None  # noqa: S101  (bot/__main__.py refuses to start without one)
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
