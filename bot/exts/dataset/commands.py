"""/dataset add, list, caption, remove and clear; photos sent to the bot in a direct message join the dataset too."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot import captions, intake
from bot.app import NOT_SERVED, DoppelBot, owner_of
from bot.captions import CAPTION_MAX, check_caption
from bot.exts.dataset.keep import keep_view
from bot.exts.dataset.uploads import Uploads
from bot.members import photo_checks
from bot.members.owner import Owner
from bot.ui.contact_sheet import contact_sheet
from contract import JobKind, JobState


def read_caption(text: str) -> tuple[str, str | None]:
    """The caption as kept, and why it cannot be one (bot.captions.check_caption's reason) or None."""
    try:
        return check_caption(text), None
    except intake.Rejected as refusal:
        return "", refusal.reason


@app_commands.guild_only()
class Dataset(commands.GroupCog, group_name="dataset", group_description="Your training photos"):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        self.uploads = Uploads(bot)
        super().__init__()

    async def cog_unload(self) -> None:
        self.uploads.close()

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
        caption, refused = read_caption(caption)
        if refused:
            await interaction.followup.send(f"No photo was added: {refused}.", ephemeral=True)
            return
        lines, keep = await self.uploads.add_photos(owner_of(interaction), attachments, caption)
        await interaction.followup.send("\n".join(lines), ephemeral=True, view=keep or discord.utils.MISSING)

    @app_commands.command(name="list", description="See your photos and captions (only you see them)")
    async def list_photos(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        owner = owner_of(interaction)
        photos = await self.bot.members.photos(owner)
        if not photos:
            await interaction.followup.send("You have no photos yet. Add some with /dataset add.", ephemeral=True)
            return
        photos = await self.uploads.looked_at(owner, photos)
        marks = photo_checks.marks(photos)
        sheet = await asyncio.to_thread(contact_sheet, [(p.number, p.path, p.caption) for p in photos], marks)
        left_out = photo_checks.left_out(photos)
        header = "\nLeft out of training unless you keep them:"
        why = "\n".join([header, *photo_checks.lines(left_out)]) if left_out else ""
        keep = keep_view([p for p, _ in left_out])
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
        caption, refused = read_caption(text)
        if refused:
            await interaction.response.send_message(f"The caption was not changed: {refused}.", ephemeral=True)
            return
        photo = await self.bot.members.set_caption(owner_of(interaction), number, caption)
        shown_caption = captions.shown(caption) or "(no caption)"
        message = f"Photo {number} now reads: {shown_caption}" if photo else self._no_photo(number)
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
        caption, refused = read_caption(message.content)
        if refused:
            await message.channel.send(f"No photo was added: {refused} (the text of your message is their caption).")
            return
        lines, keep = await self.uploads.add_photos(owner, list(message.attachments[:10]), caption)
        await message.channel.send("\n".join(lines), view=keep or discord.utils.MISSING)


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)
