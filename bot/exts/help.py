"""/help: what doppel does, its commands, the rule for whose face a prompt draws, group pictures and sharing."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot

HELP = """\
**doppel** learns what you look like from your photos and draws you on request.

**1. Photos** (10 to 40 of just you, varied: light, places, angles, expressions)
`/dataset add` up to 10 photos at a time, with a caption saying what is in them, or send them to me in a direct \
message (its text is the caption) once you have used doppel in a server.
`/dataset list` shows them numbered; `/dataset caption`, `/dataset remove`, `/dataset clear` edit them.
JPEG, PNG, WebP, HEIC and AVIF are accepted. Location and camera data are removed before anything is kept. \
A photo with no face, several faces or someone else's face is marked and left out of training unless you press Keep.

**2. Training**
`/train` teaches the model your face under your trigger token (`/token` shows it). A progress message in the \
channel shows the steps and samples; `/status` and `/cancel` work meanwhile. At the end, buttons under the \
timeline make an earlier step your adapter, or train more. `/train` again (say, after adding photos) builds on \
your adapter; `fresh:True` starts from zero. If I restart meanwhile, your training goes on from its last \
checkpoint, and finished pictures are still delivered.

**3. Pictures**
`/imagine prompt` draws 1 to 4 pictures for the channel, with their seeds (the same seed gives the same picture) \
and a re-roll button. `strength` (0 to 1.5) sets how strongly adapters act; 0 is the plain model. \
`/compare prompt` (or the button under your pictures) puts the base model beside your adapter, same seed.
**Whose face:** a prompt that names no one gets your token in front: `/imagine as a knight` draws \
`YOURTOKEN, as a knight`. A prompt that names someone (their token or an @mention) is left as it is and uses \
their adapter, if they shared it with you (`/share`). Several people: `@ann:0.7` sets one's strength, and each \
face gets only its person's adapter, so faces do not blend (below).
"""

MORE_HELP = """\
**Group pictures**
Name two or more people (`/imagine @ann and @bob playing poker`): I draw the scene with neutral people first, then \
redraw each face with only that person's adapter. Give a photo as `image` (say, of your team) and its faces are \
redrawn instead, left to right in the order you named the people. The message says who is where and how closely each \
face matches the faces in their photos. If I find fewer faces than people, I show what I have and offer a one-pass \
picture with a button (there, faces can blend).

**Team styles**
`/style add name:brand` design pictures without people (logos, illustrations, product shots); `/style train`, \
`/style list`, `/style pictures`, `/style caption`, `/style remove`, `/style forget` (Manage Server, or STYLE_ROLES).

**Your likeness is yours**
`/share @member` or `/share @everyone` lends your adapter, `/unshare` takes it back. `/forget` deletes your \
photos, adapters, checkpoints, jobs and records after you confirm.
"""


class Help(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot

    @app_commands.command(name="help", description="How doppel works and what its commands do")
    async def help(self, interaction: discord.Interaction) -> None:
        settings = self.bot.settings
        limits = (
            f"\n**Limits**: {settings.max_photos} photos, {settings.trainings_per_day} trainings a day, "
            f"{settings.pictures_per_hour} pictures an hour and {settings.pictures_per_day} a day, "
            f"{settings.max_active_jobs_per_member} requests waiting at a time. `/limits` shows your use, "
            "`/queue` the line and when yours start."
        )
        # One message holds 2000 characters: the steps first, then group pictures, sharing and the limits.
        await interaction.response.send_message(HELP, ephemeral=True)
        await interaction.followup.send(MORE_HELP + limits, ephemeral=True)


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(Help(bot))
