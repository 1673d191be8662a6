"""Pictures: /imagine and /compare, the buttons under pictures (re-roll, compare, variations, upscale), and
delivering them."""

from __future__ import annotations

from bot.app import DoppelBot
from bot.exts.imagine.buttons import CompareButton, RerollButton
from bot.exts.imagine.commands import Imagine
from bot.exts.imagine.group import SinglePassButton
from bot.exts.imagine.redrawing import BUTTONS as REDRAW_BUTTONS


async def setup(bot: DoppelBot) -> None:
    bot.add_dynamic_items(RerollButton, CompareButton, SinglePassButton, *REDRAW_BUTTONS)
    await bot.add_cog(Imagine(bot))
