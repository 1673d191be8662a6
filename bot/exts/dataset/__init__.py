"""/dataset: a member's training photos (also those sent to the bot in a direct message), what the face checks
say of them, and the "Keep photo N" button under the doubted ones."""

from __future__ import annotations

from bot.app import DoppelBot
from bot.exts.dataset.commands import Dataset
from bot.exts.dataset.keep import KeepPhotoButton


async def setup(bot: DoppelBot) -> None:
    bot.add_dynamic_items(KeepPhotoButton)
    await bot.add_cog(Dataset(bot))
