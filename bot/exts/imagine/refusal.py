"""Saying why a picture cannot be drawn to the one who asked only, after a public "thinking..." reply."""

from __future__ import annotations

import discord


async def refuse(interaction: discord.Interaction, reason: object) -> None:
    """The deferred reply is the channel's: it goes, and the reason comes as a message only the asker sees."""
    await interaction.delete_original_response()
    await interaction.followup.send(f"I cannot draw that: {reason}.", ephemeral=True)
