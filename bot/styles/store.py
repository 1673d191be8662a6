"""The styles of a server, by the name its team gave each.

A style is kept as a member is, under a negative member id of its own (its `owner`): its pictures are rows of
`photos`, its adapter a row of `adapters`, its trainings rows of `jobs`, all under that owner, with files under
`data/members/GUILD/-N/`. So the member store serves a style's pictures and adapter, and `MemberStore.erase`
of its owner deletes everything of it (pictures drawn with it included, through `job_people`). What makes it a
style is its row here, and `is_style_owner`: no member id is negative.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from bot.db import Database, first_row
from bot.members.owner import Owner

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Style:
    name: str
    owner: Owner  # the style's own rows: (guild, negative id)
    token: str  # its trigger token, as a member's (unique across the bot)
    created_by: int
    created_at: float


def is_style_owner(owner: Owner) -> bool:
    """Whether these rows are a style's: Discord's member ids are positive."""
    return owner.member_id < 0


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a style, in the member's words; None when it can."""
    if NAME.match(name):
        return None
    return (f"a style's name is 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit, "
            f"not '{name}'")


class StyleStore:
    def __init__(self, db: Database):
        self.db = db

    async def create(self, guild_id: int, name: str, created_by: int, token: str) -> Style:
        """The new style `name` of the server, with its token. Raises ValueError if the name is taken or bad."""
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        now = time.time()
        async with self.db.transaction() as tx:
            if await (await tx.execute(
                "SELECT 1 FROM styles WHERE guild_id = ? AND name = ?", (guild_id, name)
            )).fetchone():
                raise ValueError(f"this server already has a style called '{name}'")
            (lowest,) = await first_row(await tx.execute(
                "SELECT MIN(member_id) FROM members WHERE guild_id = ?", (guild_id,)
            ))
            style_id = min(-1, (lowest or 0) - 1)
            await tx.execute(
                "INSERT INTO members (guild_id, member_id, token, created_at) VALUES (?, ?, ?, ?)",
                (guild_id, style_id, token, now),
            )
            await tx.execute(
                "INSERT INTO styles (guild_id, style_id, name, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
                (guild_id, style_id, name, created_by, now),
            )
        return Style(name, Owner(guild_id, style_id), token, created_by, now)

    async def named(self, guild_id: int, name: str) -> Style | None:
        """The server's style `name`; None when the server has none of that name (another server's never)."""
        row = await self.db.fetchone(_SELECT + " WHERE s.guild_id = ? AND s.name = ?", (guild_id, name))
        return _style(row) if row else None

    async def of_owner(self, owner: Owner) -> Style | None:
        """The style whose rows these are; None for a member's."""
        if not is_style_owner(owner):
            return None
        row = await self.db.fetchone(
            _SELECT + " WHERE s.guild_id = ? AND s.style_id = ?", (owner.guild_id, owner.member_id)
        )
        return _style(row) if row else None

    async def in_guild(self, guild_id: int) -> list[Style]:
        rows = await self.db.fetchall(_SELECT + " WHERE s.guild_id = ? ORDER BY s.name", (guild_id,))
        return [_style(row) for row in rows]


_SELECT = (
    "SELECT s.name, s.guild_id, s.style_id, m.token, s.created_by, s.created_at FROM styles s "
    "JOIN members m ON m.guild_id = s.guild_id AND m.member_id = s.style_id"
)


def _style(row) -> Style:
    name, guild_id, style_id, token, created_by, created_at = tuple(row)
    return Style(name, Owner(guild_id, style_id), token, created_by, created_at)
