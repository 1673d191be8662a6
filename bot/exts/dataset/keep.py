"""The "Keep photo N" button: a photo the face checks doubt goes into training after all, when its member says so."""

from __future__ import annotations

import re
from collections.abc import Sequence

import discord

from bot.app import DoppelBot
from bot.members.store import Photo

MAX_BUTTONS = 25  # Discord's limit on one message


def keep_view(photos: Sequence[Photo]) -> discord.ui.View | None:
    """A "Keep photo N" button for each doubted photo (None when there are none)."""
    if not photos:
        return None
    view = discord.ui.View(timeout=None)
    for photo in photos[:MAX_BUTTONS]:
        view.add_item(KeepPhotoButton(photo.id, photo.number))
    return view


class KeepPhotoButton(discord.ui.DynamicItem[discord.ui.Button], template=r"doppel:keep-photo:(?P<photo_id>\d+)"):
    """Keep a doubted photo for training. Only its member can; dynamic, so it works after a restart."""

    def __init__(self, photo_id: int, number: int = 0):
        label = f"Keep photo {number}" if number else "Keep this photo"
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.secondary,
                                           custom_id=f"doppel:keep-photo:{photo_id}"))
        self.photo_id = photo_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item, match: re.Match):
        return cls(int(match["photo_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: DoppelBot = interaction.client  # type: ignore[assignment]
        kept = await bot.members.keep_photo(interaction.user.id, self.photo_id)
        if kept is None:
            text = "That photo is not in your dataset (any more)."
        else:
            text = (f"Photo {kept[1]} stays in your training set. Where it shows several faces, training uses a "
                    "crop around yours.")
        await interaction.response.send_message(text, ephemeral=True)

