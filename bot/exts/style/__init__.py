"""/style: a server's team styles (brand looks) trained from design pictures, beside its members' likenesses."""

from __future__ import annotations

from bot.app import DoppelBot
from bot.exts.style.commands import Styles


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Styles(bot))
