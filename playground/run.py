"""`python -m bot playground`: start it, print where to look, run until Ctrl-C."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from pathlib import Path

from .session import data_folder, playground
from .setup import bot_settings, use_base

NOISE = (
    "Base model: tiny, a random model built offline: its pictures are noise, but everything else is real "
    "(photo checks, training, the adapter, generation). With a GPU, <code>--base black-forest-labs/FLUX.1-dev</code> "
    "shows real results."
)


def main(port: int, base: str, gpus: float | None, data_dir: Path | None, log_level: str) -> int:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    use_base(base)
    note = NOISE if base == "tiny" else f"Base model: <code>{base}</code>."
    try:
        asyncio.run(_serve(port, gpus, data_dir, note))
    except KeyboardInterrupt:
        pass
    except OSError as failed:
        if failed.errno != errno.EADDRINUSE:
            raise
        print(f"error: port {port} is in use on 127.0.0.1; --port picks another (0: any free one)", file=sys.stderr)
        return 2
    except Exception as failed:  # logged in full where it happened
        print(f"error: the playground stopped: {failed}", file=sys.stderr)
        return 1
    return 0


async def _serve(port: int, gpus: float | None, data_dir: Path | None, note: str) -> None:
    with data_folder(data_dir) as folder:
        async with playground(lambda fake, guild: bot_settings(fake, guild, folder, gpus), note, port) as running:
            print(f"doppel playground: open {running.url}  (Ctrl-C stops it; data in {folder})", flush=True)
            await running.bot
