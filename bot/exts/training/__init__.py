"""Training: /train, /status, /cancel; the progress message that follows a run; the announcement with its
timeline; and the buttons under it to choose an earlier step or train more."""

from __future__ import annotations

from bot.app import DoppelBot
from bot.exts.training.choices import TrainMoreButton, UseStepButton
from bot.exts.training.commands import Training


async def setup(bot: DoppelBot) -> None:
    bot.add_dynamic_items(UseStepButton, TrainMoreButton)
    await bot.add_cog(Training(bot))
