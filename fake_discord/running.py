"""Running a discord.py bot against the stand-in: start it, wait for on_ready, close it.

`running_bot` sets the bot's `guild_ready_timeout` (discord.py waits that long after the last
GUILD_CREATE before `on_ready`, 2 s by default) to 0.05 s unless told otherwise. A bot class
that passes its keyword options through to `commands.Bot` can instead be built with
`guild_ready_timeout=0.05`; pass `guild_ready_timeout=None` to leave the bot's own value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from discord import app_commands
from discord.ext import commands

from .api import FakeDiscord

BotT = TypeVar("BotT", bound=commands.Bot)


class _ErrorLogs(logging.Handler):
    """Collects what discord.py logs at ERROR: the exceptions it swallows in commands, views and events.

    A failed check (an `interaction_check` that answered and returned False) is discord.py's
    documented way to refuse, logged at ERROR by its default handler: not collected.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (app_commands.CheckFailure, commands.CheckFailure)):
            return
        self.records.append(record)

    def report(self) -> str:
        formatter = logging.Formatter("%(name)s: %(message)s")
        return "\n".join(formatter.format(record) for record in self.records)


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    bot: BotT,
    *,
    token: str | None = None,
    ready_timeout: float = 10,
    guild_ready_timeout: float | None = 0.05,
    fail_on_bot_errors: bool = True,
) -> AsyncIterator[BotT]:
    """Start `bot` against `fake`, wait for its on_ready, and close it on exit.

    The bot's own setup_hook runs as in production (its tree.sync(), global or per guild, reaches
    the stand-in). A failure to start (wrong token, an exception in setup_hook) is raised here.
    discord.py only logs an exception raised in a command, a view or an event handler; with
    `fail_on_bot_errors` such a log line fails the block on exit (set it False in a test where
    the bot is meant to leave one unhandled).
    """
    if guild_ready_timeout is not None:
        # A private attribute, set from the `guild_ready_timeout` option at construction; stable since 1.x.
        bot._connection.guild_ready_timeout = guild_ready_timeout
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    errors = _ErrorLogs()
    discord_logger = logging.getLogger("discord")
    discord_logger.addHandler(errors)
    bot.add_listener(on_ready, "on_ready")
    with fake.patch_discord_py():
        runner = asyncio.create_task(bot.start(token or fake.token), name=f"bot {type(bot).__name__}")
        waiter = asyncio.create_task(ready.wait())

        async def stop(*, failed: bool = False) -> None:
            waiter.cancel()
            bot.remove_listener(on_ready, "on_ready")
            await bot.close()
            try:
                await asyncio.wait_for(runner, 5)
            except (TimeoutError, asyncio.CancelledError):
                pass
            except Exception:
                # Closing under a start-up still in progress breaks it (its database is shut, say): that
                # follows from the failure being raised, and must not stand in its place.
                if not failed:
                    raise
            finally:
                discord_logger.removeHandler(errors)

        try:
            done, _ = await asyncio.wait({runner, waiter}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()  # raises the bot's start-up failure
                raise RuntimeError("the bot stopped before it was ready")
            if waiter not in done:
                raise TimeoutError(f"the bot was not ready within {ready_timeout} s; its start was at "
                                   + (_awaiting(runner) or "its end"))
            yield bot
        except BaseException:
            await stop(failed=True)
            raise
        await stop()
        if fail_on_bot_errors and errors.records:
            raise AssertionError(
                "the bot logged errors (running_bot(..., fail_on_bot_errors=False) to allow):\n" + errors.report()
            )


def _awaiting(task: asyncio.Task) -> str:
    """Where a task is suspended, outermost call first: what a start-up that took too long was waiting on."""
    places = []
    coroutine: Any = task.get_coro()
    while coroutine is not None and getattr(coroutine, "cr_frame", None) is not None:
        frame = coroutine.cr_frame
        places.append(f"{frame.f_code.co_name} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        coroutine = coroutine.cr_await
    return " > ".join(places)
