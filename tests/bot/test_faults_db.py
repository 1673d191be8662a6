"""A database that cannot vanish silently: what a crash leaves, a WAL removed or damaged, a database deleted,
backups and their restore. A "crash" here is a copy of the files taken while the connection is open: the
state a SIGKILL leaves (the process test in test_faults_process.py kills a real bot)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
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
    with pytest.raises(DatabaseLost, match="write-ahead log .* is gone.*there is no backup in"):
        await Database.open(removed)

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


async def _closed(path: Path) -> bytes:
    """A database with a few pages of members and a backup, closed (all in its file); returns the file's bytes."""
    db = await _filled(path)
    for k in range(6, 60):
        await db.execute("INSERT INTO members (guild_id, member_id, token, created_at) VALUES (1, ?, ?, 0)",
                         (k, f"TOK{k:03d}" + "x" * 200))
    await backups.back_up(db, BotSettings(data_dir=path.parent))
    await db.close()
    return path.read_bytes()


async def _refusal(path: Path) -> str:
    with pytest.raises(DatabaseLost) as refused:
        await Database.open(path)
    sentence = str(refused.value)
    assert str(path) in sentence and "\n" not in sentence
    return sentence


async def test_a_database_whose_first_bytes_are_overwritten_is_refused_with_the_restore_command(tmp_path):
    path = tmp_path / "data" / "doppel.sqlite3"
    damaged = bytearray(await _closed(path))
    damaged[:100] = os.urandom(100)  # what a stray copy or a bad disk does to the header
    path.write_bytes(damaged)
    sentence = await _refusal(path)
    assert "is not a database any more" in sentence
    (backup,) = (path.parent / "backups").iterdir()
    assert f"restore the newest backup, {backup.name}" in sentence
    # The command it gives restores it: with the files moved aside, the backup opens with every member.
    command = sentence.split("with the bot stopped: ")[1].split(" (README")[0]
    subprocess.run(command, shell=True, check=True)  # noqa: S602  (the command the bot tells an owner to paste into a shell)
    restored = await Database.open(path)
    assert (await restored.fetchone("SELECT COUNT(*) FROM members"))[0] == 60
    await restored.close()
    (aside,) = path.parent.glob("damaged-*")
    assert (aside / path.name).read_bytes() == damaged  # nothing is deleted: the damaged file is kept


async def test_a_damaged_page_is_refused(tmp_path):
    path = tmp_path / "data" / "doppel.sqlite3"
    data = bytearray(await _closed(path))
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 4 * page
    data[3 * page:4 * page] = os.urandom(page)  # a page of members' rows (the header and schema intact)
    path.write_bytes(data)
    assert "is damaged" in await _refusal(path)


async def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "data" / "doppel.sqlite3"
    await _closed(path)
    with sqlite3.connect(path) as plain:
        plain.execute("PRAGMA user_version = 999")
    assert "written by a newer doppel (schema 999" in await _refusal(path)
    with sqlite3.connect(path) as plain:
        assert plain.execute("SELECT COUNT(*) FROM members").fetchone() == (60,)  # untouched


OPEN_IT = """
import asyncio, sys
from pathlib import Path
from bot.db import Database, DatabaseLost
try:
    asyncio.run(Database.open(Path(sys.argv[1])))
except DatabaseLost as refused:
    sys.exit(f"refused: {refused}")
print("opened")
"""


def _open_under(mounts: str, path: Path) -> subprocess.CompletedProcess:
    """Open the database in a mount namespace of its own (a read-only or a small disk, made by `mounts`)."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace on this machine: {probe.stderr.decode().strip()}")
    script = f'{mounts} && exec "$0" -c "$1" "$2"'
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script,
                           sys.executable, OPEN_IT, str(path)], capture_output=True, text=True, timeout=60)


async def test_a_read_only_disk_is_refused(tmp_path):
    path = tmp_path / "data" / "doppel.sqlite3"
    before = await _closed(path)
    data = path.parent
    result = _open_under(f"mount --bind {data} {data} && mount -o remount,bind,ro {data}", path)
    assert result.returncode == 1 and result.stderr.startswith(f"refused: The bot cannot write the database {path}")
    assert "writable" in result.stderr and path.read_bytes() == before


async def test_a_full_disk_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = _open_under(f"mount -t tmpfs -o size=256k tmpfs {data}", data / "doppel.sqlite3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"refused: The disk that holds the database {data / 'doppel.sqlite3'} is full")
