"""Photos a member sends, by /dataset add or in a direct message: each one checked, cleaned and kept, or
refused with why, and what the face checks say of the set with it."""

from __future__ import annotations

import asyncio

import discord

from bot import captions, intake
from bot.app import DoppelBot
from bot.exts.dataset import checks
from bot.exts.dataset.keep import keep_view
from bot.members import storage
from bot.members.owner import Owner
from bot.members.store import Photo, PhotoLimit

DECODERS = 2  # photos decoded at once, all members together (each decode's memory is capped: bot/intake.py)
MAX_IN_FLIGHT = 10  # a member's uploads being checked at once (one /dataset add's worth); more wait their turn


def shown(name: str) -> str:
    """A file name as safe to show: no markdown, not too long."""
    return captions.shown(name[:80])


class Uploads:
    """The photo intake of the /dataset cog: its limits, its decoders and face checks, and the members' turns."""

    def __init__(self, bot: DoppelBot):
        self.bot = bot
        settings = bot.settings
        self.limits = intake.IntakeLimits.for_training(settings)
        self.decoder = intake.DecodePool(DECODERS)
        self.faces = intake.FaceChecks() if settings.face_checks else None
        self._in_flight: dict[Owner, int] = {}  # uploads of each member being checked or waiting to be
        self._turns: dict[Owner, asyncio.Lock] = {}  # one batch of a member at a time: dedupe and disk stay exact

    def close(self) -> None:
        self.decoder.close()
        if self.faces is not None:
            self.faces.close()

    async def looked_at(self, owner: Owner, photos: list[Photo]) -> list[Photo]:
        """The member's `photos` (as just read), those from before the face checks looked at now."""
        if self.faces is None:
            return photos
        return await checks.look_at_unchecked(self.bot.members, self.faces, owner, photos)

    async def add_photos(
        self, owner: Owner, attachments: list[discord.Attachment], caption: str
    ) -> tuple[list[str], discord.ui.View | None]:
        """Check, clean and keep each upload; one line per file saying what happened to it, and the buttons to
        keep the photos the face checks doubt.

        A member's batches take turns, and at most MAX_IN_FLIGHT of their uploads are in hand at once:
        more are refused, unread, until the bot has answered about those."""
        busy = self._in_flight.get(owner, 0)
        if busy + len(attachments) > MAX_IN_FLIGHT:
            return [f"I am still checking {busy} of your photos; send these once I have answered about those."], None
        self._in_flight[owner] = busy + len(attachments)
        turn = self._turns.setdefault(owner, asyncio.Lock())
        try:
            async with turn:
                return await self._add_photos(owner, attachments, caption)
        finally:
            self._in_flight[owner] -= len(attachments)
            if not self._in_flight[owner]:
                del self._in_flight[owner], self._turns[owner]

    async def _add_photos(
        self, owner: Owner, attachments: list[discord.Attachment], caption: str
    ) -> tuple[list[str], discord.ui.View | None]:
        bot = self.bot
        await bot.token_for(owner)
        photos = await bot.members.photos(owner)
        photos = await self.looked_at(owner, photos)
        added: dict[str, str] = {}  # stored SHA-256 -> shown name, of the photos this batch adds
        existing = [(p.number, p.sha256, p.phash) for p in photos]
        uploads = {p.source_sha256: p.number for p in photos if p.source_sha256}
        used = await storage.disk_used(bot.members, bot.jobs, bot.settings.jobs_dir, owner)
        folder = bot.members.folder(owner) / "photos"
        lines = []
        for attachment in attachments:
            name = shown(attachment.filename)
            try:
                if len(existing) >= bot.settings.max_photos:
                    raise PhotoLimit(f"you already have {len(existing)} photos, the most you can keep")
                intake.check_source_url(attachment.url, self.limits)
                if attachment.size > self.limits.max_bytes:  # before downloading it
                    raise intake.Rejected(
                        f"the file is {attachment.size / 2**20:.0f} MB; "
                        f"the limit is {bot.settings.max_upload_mb} MB"
                    )
                data = await attachment.read()
                upload = intake.source_sha256(data, uploads)  # an exact copy goes before it is decoded
                photo = await self.decoder.prepare(data, self.limits)
                intake.check_not_duplicate(photo, existing, self.limits)
                full = storage.over_limit(used, len(photo.data), bot.settings.member_disk_mb)
                if full:
                    raise intake.Rejected(full)
                found = await self.faces.look(photo.data) if self.faces is not None else None
                path = await asyncio.to_thread(intake.store_photo, photo, folder)
                try:
                    number = await bot.members.add_photo(
                        owner, sha256=photo.sha256, phash=photo.phash, path=path, caption=caption, shown_name=name,
                        width=photo.width, height=photo.height, max_photos=bot.settings.max_photos,
                        source_sha256=upload, look=found.to_json() if found is not None else None,
                    )
                except BaseException:  # no row, no file: the file is this photo's alone (its SHA-256 is new)
                    await asyncio.to_thread(path.unlink, missing_ok=True)
                    raise
                existing.append((number, photo.sha256, photo.phash))
                uploads[upload] = number
                used += len(photo.data)
                added[photo.sha256] = name
                lines.append(photo.sha256)  # its line comes once the set is judged with it
            except intake.Rejected as refusal:
                lines.append(f"❌ {name}: {refusal.reason}")
            except PhotoLimit as limit:
                lines.append(f"❌ {name}: {limit}")
            except discord.HTTPException:
                lines.append(f"❌ {name}: Discord would not give me the file; try sending it again")
        judged = await checks.judge_batch(bot.members, owner, photos, added)
        # (A photo removed meanwhile has no verdict: it was added all the same.)
        lines = [judged.added.get(line, f"✅ {added[line]}: added") if line in added else line for line in lines]
        total, usable = len(existing), judged.usable
        needed = bot.settings.min_photos_to_train
        left = f" ({total - usable} left out of training)" if usable < total else ""
        more = "" if usable == total else " usable"
        lines += judged.earlier
        lines.append(
            f"You have {total} photo{'s' if total != 1 else ''}{left}."
            + (f" {needed - usable} more{more} and you can /train." if usable < needed else " Ready for /train.")
        )
        return lines, keep_view(judged.keep)
