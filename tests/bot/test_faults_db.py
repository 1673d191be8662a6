"""A database that cannot vanish silently: what a crash leaves, a WAL removed or damaged, a database deleted,
backups and their restore. A "crash" here is a copy of the files taken while the connection is open: the
state a SIGKILL leaves (the process test in test_faults_process.py kills a real bot)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from bot import backups
from bot.db import Database, DatabaseLost
from bot.settings import BotSettings


async def _filled(path: Path) -> Database:
    db = await Database.open(path)
    await db.execute("PRAGMA wal_autocheckpoint = 0")  # the newest commits stay in the WAL, as between checkpoints
    for k in range(6):
        await db.execute("INSERT INTO members (guild_id, member_id, token, created_at) VALUES (1, ?, ?, 0)",
                         (k, f"TOK{k:03d}"))
    return db


def _crash_image(path: Path, into: Path) -> Path:
    """The database's files as a SIGKILL would leave them."""
    into.mkdir()
    for source in path.parent.glob(path.name + "*"):
        shutil.copy2(source, into / source.name)
    return into / path.name


async def test_a_database_that_lost_contents_refuses_to_open_and_says_what_to_do(tmp_path):
    path = tmp_path / "data" / "doppel.sqlite3"
    db = await _filled(path)
    crashed = _crash_image(path, tmp_path / "crashed")
    await db.close()
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-open").exists()  # closed: all in the file
    with sqlite3.connect(path) as plain:
        assert plain.execute("SELECT COUNT(*) FROM members").fetchone() == (6,)

    # A crash image opens, with every commit (the WAL is replayed).
    intact = _crash_image(crashed, tmp_path / "intact")
    reopened = await Database.open(intact)
    assert (await reopened.fetchone("SELECT COUNT(*) FROM members"))[0] == 6
    await reopened.close()

    # ... but not without its WAL: SQLite would open it without the newest commits.
    removed = _crash_image(crashed, tmp_path / "removed")
    Path(f"{removed}-wal").unlink()
    with pytest.raises(DatabaseLost, match="write-ahead log .* is gone") as lost:
        await Database.open(removed)
    assert "restore the newest backup" in str(lost.value)

    # ... nor with 8 KiB of its WAL overwritten: SQLite would drop every commit from there on, and say nothing.
    damaged = _crash_image(crashed, tmp_path / "damaged")
    wal = Path(f"{damaged}-wal")
    data = bytearray(wal.read_bytes())
    data[8192:16384] = os.urandom(8192)
    wal.write_bytes(data)
    with pytest.raises(DatabaseLost, match="damaged"):
        await Database.open(damaged)

    # A database file deleted while stopped: a new empty one is not started in its place.
    path.unlink()
    with pytest.raises(DatabaseLost, match="was here before"):
        await Database.open(path)
    # Nor when its markers went too, while members' files are still there.
    for marker in path.parent.glob("doppel.sqlite3*"):
        marker.unlink()
    (path.parent / "members" / "1" / "5").mkdir(parents=True)
    with pytest.raises(DatabaseLost, match="holds members' files"):
        await Database.open(path)
    shutil.rmtree(path.parent / "members")
    await (await Database.open(path)).close()  # really new: it opens


async def test_backups_are_online_copies_kept_for_their_days_and_restore_by_copying_back(tmp_path):
    settings = BotSettings(data_dir=tmp_path / "data", backup_keep_days=2)
    db = await _filled(settings.database_file)
    now = time.time()
    old = await backups.back_up(db, settings, now=now - 3 * 86400)
    recent = await backups.back_up(db, settings, now=now - 86400)
    stranger = backups.backups_dir(settings) / "notes.txt"
    stranger.write_text("the operator's")
    newest = await backups.back_up(db, settings, now=now)
    assert not old.exists() and recent.exists() and newest.exists() and stranger.exists()
    await db.execute("DELETE FROM members")
    await db.close()

    # Restore (README, "Backups and restore"): with the bot stopped, the backup copied over the database.
    path = settings.database_file
    for leftover in path.parent.glob(path.name + "-*"):
        if not leftover.name.endswith("-id"):
            leftover.unlink()
    shutil.copy2(newest, path)
    restored = await Database.open(path)
    assert (await restored.fetchone("SELECT COUNT(*) FROM members"))[0] == 6
    await restored.close()
