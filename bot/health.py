"""Liveness for the container's health check: the bot touches a file; the check reads its age.

A file rather than a port, so the bot opens no listening socket.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bot.settings import BotSettings
from contract.atomic import atomic_write_bytes

log = logging.getLogger(__name__)


def beat(settings: BotSettings) -> None:
    """Replace the heartbeat atomically: a full disk leaves the last one whole (and stale), never empty."""
    atomic_write_bytes(settings.heartbeat_file, f"{time.time():.0f}\n".encode())


async def keep_beating(settings: BotSettings, is_ready) -> None:
    """Write the heartbeat while the bot is connected; stop writing when it is not."""
    while True:
        if is_ready():
            try:
                await asyncio.to_thread(beat, settings)
            except OSError as exc:  # the check then fails for this reason, which the operator reads here
                log.error("could not write the heartbeat %s: %s", settings.heartbeat_file, exc)
        await asyncio.sleep(settings.heartbeat_seconds)


def check(settings: BotSettings) -> int:
    """0 when the last heartbeat is at most three intervals old, else 1."""
    try:
        age = time.time() - float(settings.heartbeat_file.read_text())
    except (OSError, ValueError):
        print("unhealthy: the bot has not written a heartbeat yet")
        return 1
    if age > 3 * settings.heartbeat_seconds:
        print(f"unhealthy: last heartbeat {age:.0f} s ago")
        return 1
    print(f"healthy: last heartbeat {age:.0f} s ago")
    return 0
