"""Keeping the database safe while the bot runs: the WAL checkpointed regularly, online backups on a schedule.

Backups are whole copies made with SQLite's backup API (consistent while the bot writes) into
DATA_DIR/backups, named by their UTC time; those older than BACKUP_KEEP_DAYS are deleted (only
files of that name pattern: nothing else in the folder is touched). Restoring is copying one back
while the bot is stopped (README, "Backups and restore").
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.db import BACKUP_NAME, BACKUP_STAMP, Database, backups_folder, newest_backup
from bot.settings import BotSettings

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 300.0


def backups_dir(settings: BotSettings) -> Path:
    return backups_folder(settings.database_file)


async def back_up(db: Database, settings: BotSettings, now: float | None = None) -> Path:
    """One backup now; older ones past their days deleted. Returns the new backup's path."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    target = backups_dir(settings) / f"doppel-{moment.strftime(BACKUP_STAMP)}.sqlite3"
    await db.backup(target)
    await asyncio.to_thread(prune, backups_dir(settings), settings.backup_keep_days, moment.timestamp())
    log.info("database backed up to %s", target)
    return target


def prune(folder: Path, keep_days: float, now: float) -> list[Path]:
    """Delete the backups (by their name) older than `keep_days`; the newest is always kept."""
    dated = sorted(
        (datetime.strptime(m.group(1), BACKUP_STAMP).replace(tzinfo=UTC).timestamp(), path)
        for path in folder.glob("doppel-*.sqlite3") if (m := BACKUP_NAME.match(path.name))
    )
    old = [path for when, path in dated[:-1] if now - when > keep_days * 86400]
    for path in old:
        path.unlink(missing_ok=True)
    return old


async def keep_safe(db: Database, settings: BotSettings) -> None:
    """Checkpoint every CHECKPOINT_EVERY_S; back up every BACKUP_INTERVAL_HOURS (first when none is recent)."""
    interval = settings.backup_interval_hours * 3600
    newest = newest_backup(backups_dir(settings))
    last = newest.stat().st_mtime if newest else 0.0
    while True:
        try:
            if time.time() - last >= interval:
                await back_up(db, settings)
                last = time.time()
            await db.checkpoint()
        except Exception:  # the operator reads why; the bot goes on serving
            log.exception("keeping the database safe failed (checkpoint or backup); trying again")
        await asyncio.sleep(min(CHECKPOINT_EVERY_S, interval))
