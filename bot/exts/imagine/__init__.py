"""Pictures: /imagine and /compare, the re-roll and compare buttons under pictures, and delivering them."""

from __future__ import annotations

from bot.app import DoppelBot
from bot.exts.imagine.buttons import CompareButton, RerollButton
from bot.exts.imagine.commands import Imagine
from bot.exts.imagine.group import SinglePassButton


async def setup(bot: DoppelBot) -> None:
    bot.add_dynamic_items(RerollButton, CompareButton, SinglePassButton)
    await bot.add_cog(Imagine(bot))
