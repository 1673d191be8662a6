"""/dataset: a member's training photos. Also photos sent to the bot in a direct message."""

from __future__ import annotations

import asyncio
import io
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot import intake
from bot.app import DoppelBot, owner_of
from bot.members.owner import Owner
from bot.members.store import PhotoLimit
from bot.ui.contact_sheet import contact_sheet

log = logging.getLogger(__name__)

CAPTION_MAX = 300


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
        super().__init__()

    async def add_photos(self, owner: Owner, attachments: list[discord.Attachment], caption: str) -> list[str]:
        """Check, clean and keep each upload; one line per file saying what happened to it."""
        await self.bot.token_for(owner)
        existing = [(p.number, p.sha256, p.phash) for p in await self.bot.members.photos(owner)]
        folder = self.bot.members.folder(owner) / "photos"
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
                photo = await asyncio.to_thread(intake.prepare, data, self.limits)
                intake.check_not_duplicate(photo, existing, self.limits)
                path = await asyncio.to_thread(intake.store_photo, photo, folder)
                number = await self.bot.members.add_photo(
                    owner, sha256=photo.sha256, phash=photo.phash, path=path, caption=caption, shown_name=name,
                    width=photo.width, height=photo.height, max_photos=self.bot.settings.max_photos,
                )
                existing.append((number, photo.sha256, photo.phash))
                lines.append(f"✅ {name}: added as photo {number}")
            except intake.Rejected as refusal:
                lines.append(f"❌ {name}: {refusal.reason}")
            except PhotoLimit as limit:
                lines.append(f"❌ {name}: {limit}")
            except discord.HTTPException:
                lines.append(f"❌ {name}: Discord would not give me the file; try sending it again")
        total = len(existing)
        needed = self.bot.settings.min_photos_to_train
        lines.append(
            f"You have {total} photo{'s' if total != 1 else ''}."
            + (f" {needed - total} more and you can /train." if total < needed else " Ready for /train.")
        )
        return lines

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
        lines = await self.add_photos(owner_of(interaction), attachments, caption.strip())
        await interaction.followup.send("\n".join(lines), ephemeral=True)

    @app_commands.command(name="list", description="See your photos and captions (only you see them)")
    async def list_photos(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        photos = await self.bot.members.photos(owner_of(interaction))
        if not photos:
            await interaction.followup.send("You have no photos yet. Add some with /dataset add.", ephemeral=True)
            return
        sheet = await asyncio.to_thread(contact_sheet, [(p.number, p.path, p.caption) for p in photos])
        await interaction.followup.send(
            f"Your {len(photos)} photos. Change a caption with /dataset caption, remove one with /dataset remove.",
            file=discord.File(io.BytesIO(sheet), "photos.png"),
            ephemeral=True,
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
        photos = await self.bot.members.clear_photos(owner_of(interaction))
        for photo in photos:
            await asyncio.to_thread(_unlink, photo.path)
        await interaction.response.send_message(f"Removed all {len(photos)} of your photos.", ephemeral=True)

    @staticmethod
    def _no_photo(number: int) -> str:
        return f"You have no photo {number}; /dataset list shows your photos and their numbers."

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Photos sent in a direct message join the sender's dataset, the message text as caption."""
        if message.guild is not None or message.author.bot or not message.attachments:
            return
        # Which server's dataset: the one server where the sender already uses doppel.
        guilds = await self.bot.members.guilds_of(message.author.id)
        if len(guilds) != 1:
            where = "several servers" if guilds else "no server yet"
            await message.channel.send(
                f"You use doppel in {where}, so I cannot tell whose dataset these photos are for: "
                "use /dataset add in the server (after that, photos sent here go to that server's dataset)."
            )
            return
        owner = Owner(guilds[0], message.author.id)
        lines = await self.add_photos(owner, list(message.attachments[:10]), message.content.strip()[:CAPTION_MAX])
        await message.channel.send("\n".join(lines))


def _unlink(path: str) -> None:
    from pathlib import Path

    Path(path).unlink(missing_ok=True)


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Dataset(bot))
