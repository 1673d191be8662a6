"""The SQLite database: one file, WAL, foreign keys, numbered migrations, and checks that it did not vanish.

Migrations are `NNN_name.sql` files in `bot/migrations/`; each
runs once, in number order, inside a transaction, and `PRAGMA user_version`
records the last one applied.

In WAL mode the newest commits live in the `-wal` file until a checkpoint copies them into
the database file: the WAL *is* part of the database. `PRAGMA synchronous = FULL` fsyncs the
WAL at every commit, so a success recorded is a success kept, even through a power cut (NORMAL
may lose the last commits then); doppel commits a few times a second at most, so the cost does
not show. The bot checkpoints regularly and at a graceful stop (`checkpoint`), and refuses to
open a database that lost contents (`check_intact`, at `connect`):
- `<db>-id`, written beside a database once it has its tables: a database that is new while
  its `-id` (or its members' and jobs' folders) exists was deleted or replaced;
- `<db>-open`, there while a connection is open: after a crash SQLite needs the WAL, so a
  missing WAL then means it was removed (SQLite deletes it only at a clean close);
- a WAL whose checksum chain breaks before frames of the same generation: damaged, and SQLite
  would silently drop every commit from the damage on;
- `PRAGMA integrity_check`, and SQLite's own refusals (a file that is not a database, a damaged page);
- a schema newer than this version's migrations (a newer doppel wrote it);
- a read-only or full disk, checked before SQLite opens, and SQLite's errors of the same kinds.
Each refusal is one sentence naming the file and what to do (for a damaged file: the newest backup and the
command that restores it, as the README's "Backups and restore" gives it); `python -m bot` exits with 3 then.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shlex
import shutil
import sqlite3
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
BACKUP_NAME = re.compile(r"^doppel-(\d{8}T\d{6}Z)\.sqlite3$")  # bot/backups.py writes them
BACKUP_STAMP = "%Y%m%dT%H%M%SZ"
MIN_FREE_BYTES = 1 << 20  # below this a start would fail at its first commits: the disk counts as full
# SQLite's primary result codes (sqlite3.h) for the errors a start can meet on an unusable file or disk
SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = (
    3, 8, 10, 11, 13, 14, 26)


class DatabaseLost(Exception):
    """The database cannot be used (it lost contents, is damaged or newer, or its disk is read-only or full): the
    bot must not start on it, and a restart does not mend it."""


def backups_folder(path: Path) -> Path:
    return path.parent / "backups"


def newest_backup(folder: Path) -> Path | None:
    found = sorted(p for p in folder.glob("doppel-*.sqlite3") if BACKUP_NAME.match(p.name))
    return found[-1] if found else None


def restore_hint(path: Path) -> str:
    """What to do with a damaged or lost database: the README's restore, as one command with the real names."""
    backup = newest_backup(backups_folder(path))
    if backup is None:
        return (f"there is no backup in {backups_folder(path)} to restore: keep the files as they are, and do not "
                f"start the bot on them (README, \"Backups and restore\")")
    aside = f"damaged-{time.strftime(BACKUP_STAMP, time.gmtime())}"
    folder = shlex.quote(str(path.parent))
    return (f"restore the newest backup, {backup.name}, with the bot stopped: cd {folder} && mkdir {aside} "
            f"&& mv {path.name}* {aside}/ && cp {backup.parent.name}/{backup.name} {path.name} "
            f"(README, \"Backups and restore\")")


def migrations() -> list[tuple[int, Path]]:
    found = []
    for path in MIGRATIONS.glob("*.sql"):
        match = MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    numbers = [n for n, _ in found]
    if len(numbers) != len(set(numbers)):
        raise RuntimeError(f"two migrations share a number: {sorted(numbers)}")
    return sorted(found)


class Database:
    """One connection shared by the stores, with transactions that cannot interleave.

    On a shared connection, a statement issued while another coroutine's
    transaction is open would join that transaction; the lock prevents it.
    """

    def __init__(self, connection: aiosqlite.Connection):
        self.connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Connect, and mark the database open until `close` (a crash leaves the mark: see check_files)."""
        database = cls(await connect(path))
        _marker(path, "open").touch()
        return database

    async def close(self) -> None:
        """Checkpoint the WAL into the database file, close, and note the clean stop."""
        try:  # closing must not fail for a checkpoint that could not be made
            path: Path | None = Path(await self._path())
            await self.checkpoint()
        except Exception:
            path = None  # not cleanly closed, then: the next start checks the WAL
        await self.connection.close()
        if path is not None:
            _marker(path, "open").unlink(missing_ok=True)

    async def _path(self) -> str:
        row = await first_row(await self.connection.execute("PRAGMA database_list"))
        return row[2]

    async def checkpoint(self) -> None:
        """Copy the WAL's commits into the database file and empty the WAL (regularly, and at stop)."""
        async with self._lock:
            await self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def backup(self, target: Path) -> None:
        """An online copy of the whole database (SQLite's backup API): consistent while the bot writes."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        copy = await aiosqlite.connect(partial)
        try:
            async with self._lock:
                await self.connection.backup(copy)
        finally:
            await copy.close()
        partial.replace(target)

    async def execute(self, sql: str, args=()) -> aiosqlite.Cursor:
        async with self._lock:
            return await self.connection.execute(sql, args)

    async def fetchone(self, sql: str, args=()):
        async with self._lock:
            return await (await self.connection.execute(sql, args)).fetchone()

    async def fetchall(self, sql: str, args=()) -> list:
        async with self._lock:
            return list(await (await self.connection.execute(sql, args)).fetchall())

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """`async with db.transaction() as tx: await tx.execute(...)`: all or nothing."""
        async with self._lock:
            await self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                await self.connection.execute("ROLLBACK")
                raise
            await self.connection.execute("COMMIT")


async def first_row(cursor: aiosqlite.Cursor) -> aiosqlite.Row:
    """The first row of a query that always has one (a COUNT, a PRAGMA)."""
    row = await cursor.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row


async def connect(path: Path) -> aiosqlite.Connection:
    """Open (creating if needed), check and migrate the database. Raises DatabaseLost rather than open one
    that cannot be used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(check_files, path)
        db = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN ourselves
        try:
            await _migrate(db, await _prepare(db, path))
            _marker(path, "id").touch()
        except BaseException:
            await db.close()
            raise
    except (sqlite3.Error, OSError) as error:
        refusal = _refusal(path, error)
        if refusal is None:
            raise
        raise refusal from error
    return db


def _refusal(path: Path, error: sqlite3.Error | OSError) -> DatabaseLost | None:
    """SQLite's or the system's error at start as a sentence that says what to do; None for any other."""
    if isinstance(error, OSError):
        code = {errno.ENOSPC: SQLITE_FULL, errno.EROFS: SQLITE_READONLY,
                errno.EACCES: SQLITE_PERM, errno.EPERM: SQLITE_PERM}.get(error.errno or 0, 0)
    else:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == SQLITE_NOTADB:
        return DatabaseLost(f"The database {path} is not a database any more (its first bytes were overwritten, or "
                            f"another file took its place): {restore_hint(path)}.")
    if code == SQLITE_CORRUPT:
        return DatabaseLost(f"The database {path} is damaged ({error}): {restore_hint(path)}.")
    if code == SQLITE_FULL:
        return _disk_full(path)
    if code in (SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN):
        return _read_only(path, str(error))
    if code == SQLITE_IOERR:
        return DatabaseLost(f"The database {path} cannot be read or written ({error}): check its disk (the system's "
                            f"log says more), then start the bot again.")
    return None


def _disk_full(path: Path) -> DatabaseLost:
    free = shutil.disk_usage(path.parent).free
    return DatabaseLost(f"The disk that holds the database {path} is full ({free // 1024} KiB free): free space on "
                        f"it (old pictures and checkpoints are in {path.parent / 'jobs'}), then start the bot again.")


def _read_only(path: Path, why: str) -> DatabaseLost:
    return DatabaseLost(f"The bot cannot write the database {path} ({why}): make {path.parent} and its files "
                        f"writable for the bot's user (uid {os.getuid()}), or mount its disk read-write, then start "
                        f"the bot again.")


async def _prepare(db: aiosqlite.Connection, path: Path) -> int:
    db.row_factory = aiosqlite.Row
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = FULL")  # see the module's docstring
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute("PRAGMA busy_timeout = 5000")
    (version,) = await first_row(await db.execute("PRAGMA user_version"))
    known = max((number for number, _ in migrations()), default=0)
    if version > known:
        raise DatabaseLost(f"The database {path} was written by a newer doppel (schema {version}; this one knows up "
                           f"to {known}): run that version again, or restore a backup made before the upgrade "
                           f"(README, \"Backups and restore\").")
    if version == 0:
        _check_new(path)
    else:
        (verdict,) = await first_row(await db.execute("PRAGMA integrity_check(1)"))
        if verdict != "ok":
            found = " ".join(verdict.split())  # one line: SQLite's report spans several
            raise DatabaseLost(f"The database {path} is damaged ({found}): {restore_hint(path)}.")
    return int(version)


async def _migrate(db: aiosqlite.Connection, version: int) -> None:
    for number, script in migrations():
        if number <= version:
            continue
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script.read_text()):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {number}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise


def _marker(path: Path, name: str) -> Path:
    return path.with_name(f"{path.name}-{name}")


def _check_new(path: Path) -> None:
    """A database without tables is new only if nothing says a database was here before."""
    data = path.parent
    if _marker(path, "id").exists():
        raise DatabaseLost(f"The database {path} is empty, but a database was here before ({_marker(path, 'id')} "
                           f"exists), so it was deleted or replaced: {restore_hint(path)}.")
    for folder in (data / "members", data / "jobs"):
        if folder.is_dir() and any(folder.iterdir()):
            raise DatabaseLost(f"The database {path} is empty, but {folder} holds members' files, so the "
                               f"database was lost: {restore_hint(path)}.")


def check_files(path: Path) -> None:
    """Before SQLite opens (and would silently repair) them: a disk it cannot write, a WAL removed after a crash,
    or damaged."""
    # access() answers for the disk too (a read-only mount says no even to root); SQLite would open read-only
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise _read_only(path, "read-only")
    if shutil.disk_usage(path.parent).free < MIN_FREE_BYTES:
        raise _disk_full(path)
    wal = _marker(path, "wal")
    if not path.exists():
        return
    if _marker(path, "open").exists() and not wal.exists():
        raise DatabaseLost(f"The bot did not stop cleanly, and the database's write-ahead log {wal} is gone, so "
                           f"the newest records went with it: {restore_hint(path)}.")
    if wal.exists() and wal_damaged(wal.read_bytes()):
        raise DatabaseLost(f"The database's write-ahead log {wal} is damaged, and SQLite would drop every record "
                           f"from the damage on: {restore_hint(path)}.")


WAL_HEADER, FRAME_HEADER = 32, 24


def wal_damaged(wal: bytes) -> bool:
    """Whether the WAL's checksum chain breaks before a later frame of the same generation (same salts).

    SQLite reads the WAL up to the first frame whose checksum fails and ignores the rest: right after a
    torn last write, wrong after damage in the middle. Frames after the break that carry this generation's
    salts were written after the damaged one, so they tell the two apart.
    """
    if len(wal) < WAL_HEADER:
        return False
    magic, _, page_size = struct.unpack(">III", wal[:12])
    if magic not in (0x377F0682, 0x377F0683):
        return True
    order = ">" if magic & 1 else "<"
    salts = wal[16:24]
    sums = _checksum(wal[:24], 0, 0, order)
    if sums != struct.unpack(">II", wal[24:32]):
        return True
    frame = FRAME_HEADER + page_size
    offset = WAL_HEADER
    while offset + frame <= len(wal):
        header = wal[offset:offset + FRAME_HEADER]
        if header[8:16] != salts:
            return False  # an older generation's frame: the end of this one
        sums = _checksum(header[:8] + wal[offset + FRAME_HEADER:offset + frame], *sums, order)
        if sums != struct.unpack(">II", header[16:24]):
            later = range(offset + frame, len(wal) - frame + 1, frame)
            return any(wal[at + 8:at + 16] == salts for at in later)
        offset += frame
    return False


def _checksum(data: bytes, s1: int, s2: int, order: str) -> tuple[int, int]:
    """SQLite's WAL checksum (wal.c, walChecksumBytes), continued from (s1, s2)."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return s1, s2


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own).

    A trigger's body holds semicolons of its own: pieces are joined until SQLite calls them complete."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    statements, piece = [], ""
    for part in "\n".join(lines).split(";"):
        piece += part + ";"
        if sqlite3.complete_statement(piece):
            statements.append(piece.strip().removesuffix(";").strip())
            piece = ""
    return [s for s in statements if s]
