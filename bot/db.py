"""The SQLite database: one file, WAL, foreign keys, numbered migrations.

Migrations are `NNN_name.sql` files in `bot/migrations/`; each
runs once, in number order, inside a transaction, and `PRAGMA user_version`
records the last one applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


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
        return cls(await connect(path))

    async def close(self) -> None:
        await self.connection.close()

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
    """Open (creating if needed) and migrate the database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN ourselves
    db.row_factory = aiosqlite.Row
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute("PRAGMA busy_timeout = 5000")
    (version,) = await first_row(await db.execute("PRAGMA user_version"))
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
    return db


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
