"""/dataset: a member's training photos. Also photos sent to the bot in a direct message."""

from __future__ import annotations

import asyncio
import io
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot import intake
from bot.app import NOT_SERVED, DoppelBot, owner_of
from bot.exts import dataset_checks
from bot.members import photo_checks, storage
from bot.members.owner import Owner
from bot.members.store import PhotoLimit
from bot.ui.contact_sheet import contact_sheet
from contract import JobKind, JobState

log = logging.getLogger(__name__)

CAPTION_MAX = 300
DECODERS = 2  # photos decoded at once, all members together (each decode's memory is capped: bot/intake.py)
MAX_IN_FLIGHT = 10  # a member's uploads being checked at once (one /dataset add's worth); more wait their turn


def shown(name: str) -> str:
    """A file name as safe to show: no markdown, not too long."""
    return discord.utils.escape_markdown(discord.utils.escape_mentions(name))[:80]


@app_commands.guild_only()
class Dataset(commands.GroupCog, group_name="dataset", group_description="Your training photos"):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        settings = bot.settings
        self.limits = intake.IntakeLimits(
            max_bytes=settings.max_upload_mb * 2**20,
            min_short_side=settings.min_photo_side,
            allowed_hosts=tuple(settings.attachment_hosts),
            allowed_schemes=tuple(settings.attachment_schemes),
        )
        self.decoder = intake.DecodePool(DECODERS)
        self.faces = intake.FaceChecks() if settings.face_checks else None
        self._in_flight: dict[Owner, int] = {}  # uploads of each member being checked or waiting to be
        self._turns: dict[Owner, asyncio.Lock] = {}  # one batch of a member at a time: dedupe and disk stay exact
        super().__init__()

    async def cog_unload(self) -> None:
        self.decoder.close()
        if self.faces is not None:
            self.faces.close()

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
        if self.faces is not None:
            photos = await dataset_checks.look_at_unchecked(bot.members, self.faces, owner, photos)
        added: dict[str, str] = {}  # stored SHA-256 -> shown name, of the photos this batch adds
        existing = [(p.number, p.sha256, p.phash) for p in photos]
        uploads = {p.source_sha256: p.number for p in photos if p.source_sha256}
        used = await storage.disk_used(bot.members, bot.jobs, bot.settings.jobs_dir, owner)
        folder = bot.members.folder(owner) / "photos"
        lines = []
        for attachment in attachments:
            name = shown(attachment.filename)
            try:
                if len(existing) >= self.bot.settings.max_photos:
                    raise PhotoLimit(f"you already have {len(existing)} photos, the most you can keep")
                intake.check_source_url(attachment.url, self.limits)
                if attachment.size > self.limits.max_bytes:  # before downloading it
                    raise intake.Rejected(
                        f"the file is {attachment.size / 2**20:.0f} MB; "
                        f"the limit is {self.bot.settings.max_upload_mb} MB"
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
        judged = await dataset_checks.judge_batch(bot.members, owner, photos, added)
        # (A photo removed meanwhile has no verdict: it was added all the same.)
        lines = [judged.added.get(line, f"✅ {added[line]}: added") if line in added else line for line in lines]
        total, usable = len(existing), judged.usable
        needed = self.bot.settings.min_photos_to_train
        left = f" ({total - usable} left out of training)" if usable < total else ""
        more = "" if usable == total else " usable"
        lines += judged.earlier
        lines.append(
            f"You have {total} photo{'s' if total != 1 else ''}{left}."
            + (f" {needed - usable} more{more} and you can /train." if usable < needed else " Ready for /train.")
        )
        return lines, dataset_checks.keep_view(judged.keep)

    @app_commands.command(name="add", description="Add photos of yourself (up to 10 at once), with a caption")
    @app_commands.describe(
        photo="A photo of you: JPEG, PNG, WebP or HEIC",
        caption="What is in the photo, e.g. 'me laughing at a wedding' (optional)",
    )
    async def add(
        self,
        interaction: discord.Interaction,
        photo: discord.Attachment,
        caption: app_commands.Range[str, 0, CAPTION_MAX] = "",
        photo2: discord.Attachment | None = None,
        photo3: discord.Attachment | None = None,
        photo4: discord.Attachment | None = None,
        photo5: discord.Attachment | None = None,
        photo6: discord.Attachment | None = None,
        photo7: discord.Attachment | None = None,
        photo8: discord.Attachment | None = None,
        photo9: discord.Attachment | None = None,
        photo10: discord.Attachment | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        attachments = [a for a in (photo, photo2, photo3, photo4, photo5, photo6, photo7, photo8, photo9, photo10) if a]
        lines, keep = await self.add_photos(owner_of(interaction), attachments, caption.strip())
        await interaction.followup.send("\n".join(lines), ephemeral=True, view=keep or discord.utils.MISSING)

    @app_commands.command(name="list", description="See your photos and captions (only you see them)")
    async def list_photos(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        owner = owner_of(interaction)
        photos = await self.bot.members.photos(owner)
        if not photos:
            await interaction.followup.send("You have no photos yet. Add some with /dataset add.", ephemeral=True)
            return
        if self.faces is not None:
            photos = await dataset_checks.look_at_unchecked(self.bot.members, self.faces, owner, photos)
        marks = photo_checks.marks(photos)
        sheet = await asyncio.to_thread(contact_sheet, [(p.number, p.path, p.caption) for p in photos], marks)
        left_out = photo_checks.left_out(photos)
        header = "\nLeft out of training unless you keep them:"
        why = "\n".join([header, *photo_checks.lines(left_out)]) if left_out else ""
        keep = dataset_checks.keep_view([p for p, _ in left_out])
        bare = sum(1 for p in photos if not p.caption.strip())
        if bare and self.bot.settings.caption_model:  # CAPTION_MODEL: the trainer writes them (trainer/captioning.py)
            why += f"\n{bare} without a caption get one when you /train: what the picture shows, not how you look."
        await interaction.followup.send(
            f"Your {len(photos)} photos. Change a caption with /dataset caption, remove one with /dataset remove."
            + why,
            file=discord.File(io.BytesIO(sheet), "photos.png"),
            ephemeral=True,
            view=keep or discord.utils.MISSING,
        )

    @app_commands.command(name="caption", description="Change the caption of one of your photos")
    @app_commands.describe(number="The photo's number in /dataset list", text="The new caption")
    async def caption(
        self, interaction: discord.Interaction, number: app_commands.Range[int, 1, 200],
        text: app_commands.Range[str, 0, CAPTION_MAX],
    ) -> None:
        photo = await self.bot.members.set_caption(owner_of(interaction), number, text.strip())
        message = f"Photo {number} now reads: {text.strip() or '(no caption)'}" if photo else self._no_photo(number)
        await interaction.response.send_message(message, ephemeral=True)

    @app_commands.command(name="remove", description="Remove one of your photos")
    @app_commands.describe(number="The photo's number in /dataset list")
    async def remove(self, interaction: discord.Interaction, number: app_commands.Range[int, 1, 200]) -> None:
        owner = owner_of(interaction)
        busy = await self._training_holds_photos(owner)
        if busy:
            await interaction.response.send_message(busy, ephemeral=True)
            return
        photo = await self.bot.members.remove_photo(owner, number)
        if photo is None:
            await interaction.response.send_message(self._no_photo(number), ephemeral=True)
            return
        await asyncio.to_thread(_unlink, photo.path)
        left = len(await self.bot.members.photos(owner))
        await interaction.response.send_message(
            f"Removed photo {number} ({photo.shown_name}). You have {left} left; the numbers after it moved up.",
            ephemeral=True,
        )

    @app_commands.command(name="clear", description="Remove all your photos (your adapter stays)")
    async def clear(self, interaction: discord.Interaction) -> None:
        busy = await self._training_holds_photos(owner_of(interaction))
        if busy:
            await interaction.response.send_message(busy, ephemeral=True)
            return
        photos = await self.bot.members.clear_photos(owner_of(interaction))
        for photo in photos:
            await asyncio.to_thread(_unlink, photo.path)
        await interaction.response.send_message(f"Removed all {len(photos)} of your photos.", ephemeral=True)

    async def _training_holds_photos(self, owner: Owner) -> str | None:
        """Why photos cannot be removed now: a training of the member's, queued or running, holds a copy.

        Removing a photo leaves no copy of it, and a run's snapshot is deleted when the run ends. While it
        runs we refuse rather than delete the photo from its snapshot too: the trainer already holds the
        photo's bytes (Ray carried them) and goes on learning from it whatever the snapshot holds, and a run
        resumed after a lost worker reads its snapshot again and refuses other photos than it started with.
        Deleting the copy would neither take the photo out of that run nor leave the run whole; /cancel does both.
        """
        active = await self.bot.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
        if any(job.kind is JobKind.TRAIN for job in active):
            return ("A training of yours is queued or running, and it holds a copy of your photos until it ends. "
                    "/cancel it (its copy is deleted at once) or wait until it has finished, then try again.")
        return None

    @staticmethod
    def _no_photo(number: int) -> str:
        return f"You have no photo {number}; /dataset list shows your photos and their numbers."

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Photos sent in a direct message join the sender's dataset, the message text as caption."""
        if message.guild is not None or message.author.bot or not message.attachments:
            return
        # Which server's dataset: the one server where the sender already uses doppel.
        known = await self.bot.members.guilds_of(message.author.id)
        guilds = [g for g in known if self.bot.serves_guild(g)]  # the servers on ALLOWED_GUILDS only
        if known and not guilds:
            await message.channel.send(NOT_SERVED)
            return
        if len(guilds) != 1:
            where = "several servers" if guilds else "no server yet"
            await message.channel.send(
                f"You use doppel in {where}, so I cannot tell whose dataset these photos are for: "
                "use /dataset add in the server (after that, photos sent here go to that server's dataset)."
            )
            return
        owner = Owner(guilds[0], message.author.id)
        lines, keep = await self.add_photos(
            owner, list(message.attachments[:10]), message.content.strip()[:CAPTION_MAX]
        )
        await message.channel.send("\n".join(lines), view=keep or discord.utils.MISSING)


def _unlink(path: str) -> None:
    from pathlib import Path

    Path(path).unlink(missing_ok=True)


async def setup(bot: DoppelBot) -> None:
    bot.add_dynamic_items(dataset_checks.KeepPhotoButton)
    await bot.add_cog(Dataset(bot))
