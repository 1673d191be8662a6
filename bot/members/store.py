"""Members' rows: tokens, photos, adapters, shares, progress messages.

Files live under `data/members/GUILD/MEMBER/`; rows point at them. Deleting
rows is transactional; deleting files follows, by the caller, once the rows
are gone (a file without a row is garbage, never a leak of someone's access).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.db import Database, first_row
from bot.members.owner import Owner, member_dir
from contract import ADAPTER_FILENAME

EVERYONE = 0  # grantee id meaning every member of the server


class PhotoLimit(Exception):
    """The member has as many photos as they may."""


@dataclass(frozen=True)
class Photo:
    id: int
    number: int  # 1-based position in the member's list, as /dataset list shows it
    sha256: str
    phash: int
    path: str
    caption: str
    shown_name: str
    width: int
    height: int
    source_sha256: str | None = None  # of the file as uploaded; None for photos from before it was kept
    look: str | None = None  # what its face check saw (faces.verdict.Look as JSON); None: not looked at
    kept: bool = False  # the member keeps it although the checks doubt it is a photo of them


@dataclass(frozen=True)
class Adapter:
    owner: Owner
    path: str
    job_id: int | None
    steps: int
    state: str | None = None  # the checkpoint it came from, to train on from (with Adam's moments)
    identity: str | None = None  # the SHA-256 of its file (contract.adapter_identity); None before it was kept


@dataclass(frozen=True)
class Erased:
    """What forgetting a member deleted: counts by kind, every job it deleted (theirs and others' pictures of
    them), and the posted messages that show them, (channel id, message id), for the caller to delete."""

    counts: dict[str, int]
    jobs: tuple[int, ...]
    messages: tuple[tuple[int, int], ...]


class MemberStore:
    def __init__(self, db: Database, data_dir: Path):
        self.db = db
        self.data_dir = data_dir

    def folder(self, owner: Owner) -> Path:
        return member_dir(self.data_dir, owner)

    def adapter_file(self, owner: Owner) -> Path:
        """Where the member's adapter lives: the one /imagine uses."""
        return self.folder(owner) / "adapter" / ADAPTER_FILENAME

    # ---- tokens -----------------------------------------------------------------------------

    async def token(self, owner: Owner) -> str | None:
        row = await self.db.fetchone(
            "SELECT token FROM members WHERE guild_id = ? AND member_id = ?", (owner.guild_id, owner.member_id)
        )
        return row[0] if row else None

    async def all_tokens(self) -> list[str]:
        return [row[0] for row in await self.db.fetchall("SELECT token FROM members")]

    async def add_member(self, owner: Owner, token: str) -> str:
        """Create the member with `token`, or return the token they already have."""
        await self.db.execute(
            "INSERT OR IGNORE INTO members (guild_id, member_id, token, created_at) VALUES (?, ?, ?, ?)",
            (owner.guild_id, owner.member_id, token, time.time()),
        )
        token_now = await self.token(owner)
        if token_now is None:
            raise LookupError(f"member {owner} is missing just after being added")
        return token_now

    async def owner_of_token(self, guild_id: int, token: str) -> Owner | None:
        row = await self.db.fetchone(
            "SELECT member_id FROM members WHERE guild_id = ? AND token = ?", (guild_id, token)
        )
        return Owner(guild_id, row[0]) if row else None

    async def guilds_of(self, member_id: int) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT guild_id FROM members WHERE member_id = ? ORDER BY guild_id", (member_id,)
        )
        return [row[0] for row in rows]

    async def tokens_in(self, guild_id: int) -> dict[str, Owner]:
        """The server's members by token; a style's token (its rows have a negative id) is not a person's."""
        rows = await self.db.fetchall(
            "SELECT token, member_id FROM members WHERE guild_id = ? AND member_id > 0", (guild_id,)
        )
        return {token: Owner(guild_id, member) for token, member in rows}

    # ---- photos -----------------------------------------------------------------------------

    async def photos(self, owner: Owner) -> list[Photo]:
        rows = await self.db.fetchall(
            "SELECT * FROM photos WHERE guild_id = ? AND member_id = ? ORDER BY id", (owner.guild_id, owner.member_id)
        )
        return [_photo(row, number) for number, row in enumerate(rows, start=1)]

    async def add_photo(
        self, owner: Owner, *, sha256: str, phash: int, path: Path, caption: str, shown_name: str,
        width: int, height: int, max_photos: int, source_sha256: str | None = None, look: str | None = None,
    ) -> int:
        """The new photo's number. Raises PhotoLimit at the cap."""
        async with self.db.transaction() as tx:
            (count,) = await first_row(
                await tx.execute(
                    "SELECT COUNT(*) FROM photos WHERE guild_id = ? AND member_id = ?",
                    (owner.guild_id, owner.member_id),
                )
            )
            if count >= max_photos:
                raise PhotoLimit(f"you have {count} photos, the most you can keep; remove some with /dataset remove")
            await tx.execute(
                "INSERT INTO photos (guild_id, member_id, sha256, phash, path, caption, shown_name, width, height, "
                "added_at, source_sha256, look) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (owner.guild_id, owner.member_id, sha256, _signed(phash), str(path), caption, shown_name, width,
                 height, time.time(), source_sha256, look),
            )
        return count + 1

    async def photo(self, owner: Owner, number: int) -> Photo | None:
        photos = await self.photos(owner)
        return photos[number - 1] if 1 <= number <= len(photos) else None

    async def set_caption(self, owner: Owner, number: int, caption: str) -> Photo | None:
        photo = await self.photo(owner, number)
        if photo is not None:
            await self.db.execute("UPDATE photos SET caption = ? WHERE id = ?", (caption, photo.id))
        return photo

    async def fill_captions(self, owner: Owner, captions: dict[int, str]) -> list[int]:
        """Captions for the photos (by number) that have none; a caption the member wrote, even meanwhile,
        stays. Returns the numbers filled."""
        filled = []
        photos = await self.photos(owner)
        async with self.db.transaction() as tx:
            for photo in photos:
                caption = captions.get(photo.number, "").strip()
                if caption:
                    cursor = await tx.execute(
                        "UPDATE photos SET caption = ? WHERE id = ? AND trim(caption) = ''", (caption, photo.id)
                    )
                    if cursor.rowcount:
                        filled.append(photo.number)
        return filled

    async def set_look(self, photo_id: int, look: str) -> None:
        """Record what a photo's face check saw (for photos from before the checks)."""
        await self.db.execute("UPDATE photos SET look = ? WHERE id = ?", (look, photo_id))

    async def keep_photo(self, member_id: int, photo_id: int) -> tuple[Owner, int] | None:
        """The member keeps a photo the checks doubted. Only the photo's own member can: returns its owner and
        number, or None when it is not theirs or no longer exists."""
        row = await self.db.fetchone(
            "SELECT guild_id FROM photos WHERE id = ? AND member_id = ?", (photo_id, member_id)
        )
        if row is None:
            return None
        owner = Owner(row[0], member_id)
        await self.db.execute("UPDATE photos SET kept = 1 WHERE id = ?", (photo_id,))
        number = next((p.number for p in await self.photos(owner) if p.id == photo_id), None)
        return (owner, number) if number is not None else None

    async def remove_photo(self, owner: Owner, number: int) -> Photo | None:
        photo = await self.photo(owner, number)
        if photo is not None:
            await self.db.execute("DELETE FROM photos WHERE id = ?", (photo.id,))
        return photo

    async def clear_photos(self, owner: Owner) -> list[Photo]:
        photos = await self.photos(owner)
        await self.db.execute(
            "DELETE FROM photos WHERE guild_id = ? AND member_id = ?", (owner.guild_id, owner.member_id)
        )
        return photos

    # ---- adapters and sharing ---------------------------------------------------------------

    async def adapter(self, owner: Owner) -> Adapter | None:
        row = await self.db.fetchone(
            "SELECT path, job_id, steps, state, identity FROM adapters WHERE guild_id = ? AND member_id = ?",
            (owner.guild_id, owner.member_id),
        )
        return Adapter(owner, *row) if row else None

    async def set_adapter(
        self, owner: Owner, path: Path, job_id: int | None, steps: int, *, identity: str | None,
        state: Path | str | None = None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO adapters (guild_id, member_id, path, job_id, steps, state, identity, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (guild_id, member_id) DO UPDATE SET path = excluded.path, job_id = excluded.job_id, "
            "steps = excluded.steps, state = excluded.state, identity = excluded.identity, "
            "created_at = excluded.created_at",
            (owner.guild_id, owner.member_id, str(path), job_id, steps, str(state) if state else None, identity,
             time.time()),
        )

    async def set_identity(self, owner: Owner, identity: str) -> None:
        await self.db.execute(
            "UPDATE adapters SET identity = ? WHERE guild_id = ? AND member_id = ?",
            (identity, owner.guild_id, owner.member_id),
        )

    async def share(self, owner: Owner, grantee_id: int) -> None:
        await self.db.execute(
            "INSERT OR IGNORE INTO shares (guild_id, owner_id, grantee_id) VALUES (?, ?, ?)",
            (owner.guild_id, owner.member_id, grantee_id),
        )

    async def unshare(self, owner: Owner, grantee_id: int) -> bool:
        cursor = await self.db.execute(
            "DELETE FROM shares WHERE guild_id = ? AND owner_id = ? AND grantee_id = ?",
            (owner.guild_id, owner.member_id, grantee_id),
        )
        return cursor.rowcount > 0

    async def shared_with(self, owner: Owner) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT grantee_id FROM shares WHERE guild_id = ? AND owner_id = ? ORDER BY grantee_id",
            (owner.guild_id, owner.member_id),
        )
        return [row[0] for row in rows]

    async def may_use(self, requester: Owner, owner: Owner) -> bool:
        """Whether `requester` may draw with `owner`'s adapter: their own, or shared with them or everyone."""
        if requester == owner:
            return True
        if requester.guild_id != owner.guild_id:
            return False
        row = await self.db.fetchone(
            "SELECT 1 FROM shares WHERE guild_id = ? AND owner_id = ? AND grantee_id IN (?, ?)",
            (owner.guild_id, owner.member_id, requester.member_id, EVERYONE),
        )
        return row is not None

    # ---- progress messages ------------------------------------------------------------------

    async def set_progress_message(self, job_id: int, channel_id: int, message_id: int) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO progress_messages (job_id, channel_id, message_id) VALUES (?, ?, ?)",
            (job_id, channel_id, message_id),
        )

    async def progress_messages(self) -> dict[int, tuple[int, int]]:
        rows = await self.db.fetchall("SELECT job_id, channel_id, message_id FROM progress_messages")
        return {job: (channel, message) for job, channel, message in rows}

    # ---- messages that show members ---------------------------------------------------------

    async def record_shown(self, channel_id: int, message_id: int, job_id: int, guild_id: int,
                           member_ids: Iterable[int]) -> bool:
        """Note that a posted message shows these members (for /forget). False when the job is no longer in the
        record (forgotten while the message was being posted): the caller deletes the message then."""
        async with self.db.transaction() as tx:
            (exists,) = await first_row(await tx.execute("SELECT COUNT(*) FROM jobs WHERE id = ?", (job_id,)))
            if not exists:
                return False
            for member_id in set(member_ids):
                await tx.execute(
                    "INSERT OR IGNORE INTO shown_messages (channel_id, message_id, guild_id, member_id, job_id) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (channel_id, message_id, guild_id, member_id, job_id),
                )
        return True

    # ---- forgetting -------------------------------------------------------------------------

    async def forget(self, owner: Owner) -> dict[str, int]:
        """Delete every row of the member, their jobs included, in one transaction. Returns counts."""
        return (await self.erase(owner)).counts

    async def erase(self, owner: Owner) -> Erased:
        """Delete every row of the member in one transaction: theirs, their jobs, the picture jobs of others
        that draw them, and the records of the messages that show them (returned: the caller deletes those)."""
        g, m = owner.guild_id, owner.member_id
        counts: dict[str, int] = {}
        async with self.db.transaction() as tx:

            async def ids(sql: str, args: tuple) -> list:
                return list(await (await tx.execute(sql, args)).fetchall())

            own = [row[0] for row in await ids("SELECT id FROM jobs WHERE guild_id = ? AND member_id = ?", (g, m))]
            pictures = [row[0] for row in await ids(
                "SELECT DISTINCT jobs.id FROM jobs JOIN job_people ON job_people.job_id = jobs.id "
                "WHERE jobs.guild_id = ? AND jobs.kind = 'generate' AND jobs.member_id != ? "
                "AND job_people.member_id = ? ORDER BY jobs.id", (g, m, m)
            )]
            jobs = own + pictures
            marks = ", ".join("?" for _ in jobs) or "NULL"
            messages = [(row[0], row[1]) for row in await ids(
                f"SELECT channel_id, message_id FROM shown_messages WHERE (guild_id = ? AND member_id = ?) "  # noqa: S608  (fixed fragments and ? placeholders; the values are bound)
                f"OR job_id IN ({marks}) UNION SELECT channel_id, message_id FROM progress_messages "
                f"WHERE job_id IN ({marks}) ORDER BY 2", (g, m, *jobs, *jobs)
            )]
            for _, message_id in messages:
                await tx.execute("DELETE FROM shown_messages WHERE message_id = ?", (message_id,))
            for job_id in pictures:  # others' pictures of them: counted only where there are some
                deleted = (await tx.execute("DELETE FROM jobs WHERE id = ?", (job_id,))).rowcount
                counts["pictures"] = counts.get("pictures", 0) + deleted

            async def delete(name: str, sql: str, args: tuple) -> None:
                counts[name] = (await tx.execute(sql, args)).rowcount

            await delete("photos", "DELETE FROM photos WHERE guild_id = ? AND member_id = ?", (g, m))
            await delete("adapters", "DELETE FROM adapters WHERE guild_id = ? AND member_id = ?", (g, m))
            await delete(
                "shares", "DELETE FROM shares WHERE guild_id = ? AND (owner_id = ? OR grantee_id = ?)", (g, m, m)
            )
            await delete("jobs", "DELETE FROM jobs WHERE guild_id = ? AND member_id = ?", (g, m))
            await delete("token", "DELETE FROM members WHERE guild_id = ? AND member_id = ?", (g, m))
        return Erased(counts, tuple(jobs), tuple(messages))


def _signed(value: int) -> int:
    """SQLite integers are signed 64-bit; a 64-bit hash may not fit unsigned."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _photo(row, number: int) -> Photo:
    return Photo(
        id=row["id"],
        number=number,
        sha256=row["sha256"],
        phash=row["phash"] & ((1 << 64) - 1),
        path=row["path"],
        caption=row["caption"],
        shown_name=row["shown_name"],
        width=row["width"],
        height=row["height"],
        source_sha256=row["source_sha256"],
        look=row["look"],
        kept=bool(row["kept"]),
    )
