"""A style's pictures as they come in: the same hostile-upload checks as a member's photos (bot/intake.py), but
no face is wanted. A picture without one is what a style learns from; one with a face is kept with a warning,
since a style that learns a person is a portrait. No face descriptor of it is stored: a style never holds
anyone's face data (its `look` stays empty, so nothing of it is judged as a person's photo either)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import discord

from bot import captions, intake
from bot.app import DoppelBot
from bot.members import storage
from bot.members.store import PhotoLimit
from bot.styles.store import Style

DECODERS = 1  # a style's pictures are added now and then, by a few people: one decode at a time is plenty
FACE_WARNING = ("this picture shows a face: a style that learns a person is a portrait; remove it with "
                "/style remove if it is not meant to be learned")


class StylePictures:
    """The intake of the /style cog: its limits, its decoder and face look, and one batch per style at a time."""

    def __init__(self, bot: DoppelBot):
        self.bot = bot
        settings = bot.settings
        self.limits = intake.IntakeLimits.for_training(settings)
        self.decoder = intake.DecodePool(DECODERS)
        self.faces = intake.FaceChecks() if settings.face_checks else None
        self._turns: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)  # by style id: dedupe stays exact

    def close(self) -> None:
        self.decoder.close()
        if self.faces is not None:
            self.faces.close()

    async def add(self, style: Style, attachments: list[discord.Attachment], caption: str) -> list[str]:
        """Check, clean and keep each upload; one line per file saying what happened to it, then a total."""
        async with self._turns[style.owner.member_id]:
            return await self._add(style, attachments, caption)

    async def _add(self, style: Style, attachments: list[discord.Attachment], caption: str) -> list[str]:
        bot, owner, most = self.bot, style.owner, self.bot.settings.style_max_pictures
        pictures = await bot.members.photos(owner)
        existing = [(p.number, p.sha256, p.phash) for p in pictures]
        uploads = {p.source_sha256: p.number for p in pictures if p.source_sha256}
        used = await storage.disk_used(bot.members, bot.jobs, bot.settings.jobs_dir, owner)
        folder = bot.members.folder(owner) / "photos"
        lines = []
        for attachment in attachments:
            name = captions.shown(attachment.filename[:80])
            try:
                if len(existing) >= most:
                    raise PhotoLimit(f"the style has {len(existing)} pictures, the most it can keep")
                intake.check_source_url(attachment.url, self.limits)
                if attachment.size > self.limits.max_bytes:  # before downloading it
                    raise intake.Rejected(f"the file is {attachment.size / 2**20:.0f} MB; "
                                          f"the limit is {bot.settings.max_upload_mb} MB")
                data = await attachment.read()
                upload = intake.source_sha256(data, uploads)
                picture = await self.decoder.prepare(data, self.limits)
                intake.check_not_duplicate(picture, existing, self.limits)
                if storage.over_limit(used, len(picture.data), bot.settings.member_disk_mb):
                    raise intake.Rejected(f"the style's pictures and trainings would fill more than the "
                                          f"{bot.settings.member_disk_mb} MB a style may (MEMBER_DISK_MB); "
                                          "/style remove pictures it does not need")
                found = await self.faces.look(picture.data) if self.faces is not None else None
                path = await asyncio.to_thread(intake.store_photo, picture, folder)
                try:
                    number = await bot.members.add_photo(
                        owner, sha256=picture.sha256, phash=picture.phash, path=path, caption=caption,
                        shown_name=name, width=picture.width, height=picture.height, max_photos=most,
                        source_sha256=upload,  # and no look: see the module's text
                    )
                except BaseException:  # no row, no file: the file is this picture's alone (its SHA-256 is new)
                    await asyncio.to_thread(path.unlink, missing_ok=True)
                    raise
                existing.append((number, picture.sha256, picture.phash))
                uploads[upload] = number
                used += len(picture.data)
                warning = f" ⚠️ {FACE_WARNING}" if found is not None and found.faces else ""
                lines.append(f"✅ {name}: added as picture {number}.{warning}")
            except intake.Rejected as refusal:
                lines.append(f"❌ {name}: {refusal.reason.replace('as photo ', 'as picture ')}")  # its numbering
            except PhotoLimit as limit:
                lines.append(f"❌ {name}: {limit}")
            except discord.HTTPException:
                lines.append(f"❌ {name}: Discord would not give me the file; try sending it again")
        total, needed = len(existing), bot.settings.style_min_pictures
        ready = f" Ready for /style train name:{style.name}." if total >= needed else \
            f" {needed - total} more and it can be trained."
        lines.append(f"The style `{style.name}` has {total} picture{'s' if total != 1 else ''}.{ready}")
        return lines
