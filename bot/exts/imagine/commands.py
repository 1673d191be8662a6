"""/imagine, /compare and the buttons under pictures; pictures asked for before a restart are posted in their
channel once made."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.exts.imagine import asking, delivering, styling
from bot.exts.imagine.refusal import refuse
from bot.exts.imagine.refused import Refused
from bot.jobs.models import Job
from contract import JobKind, JobState
from contract.limits import IMAGE_COUNT, PROMPT_LENGTH, SEED, SIZES, STRENGTH

log = logging.getLogger(__name__)

SIZE_CHOICES = [app_commands.Choice(name=n, value=n) for n in SIZES]


class Imagine(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        self._posting: set[asyncio.Task] = set()

    async def cog_load(self) -> None:
        """A picture job's success is delivered by its follow-up (recorded with the success, done after a restart
        too); pictures asked for before a restart that fail are shown when they do."""
        self.bot.runner.followups.register(JobKind.GENERATE, "deliver_pictures",
                                           lambda job: delivering.deliver(self.bot, job))
        for job in await self.bot.jobs.in_state(JobState.QUEUED, JobState.RUNNING, kind=JobKind.GENERATE):
            if job.notes.channel_id:
                task = asyncio.create_task(self._post_when_done(job))
                self._posting.add(task)
                task.add_done_callback(self._posting.discard)

    async def cog_unload(self) -> None:
        for task in self._posting:
            task.cancel()

    async def _post_when_done(self, job: Job) -> None:
        try:
            done = await self.bot.runner.wait(job.id, timeout=asking.RESULT_TIMEOUT_S)
        except TimeoutError:
            log.warning("pictures of job %s were not ready in time after a restart", job.id)
            return
        except LookupError:  # deleted from the record meanwhile (someone in it was forgotten): nothing to post
            return
        if done.state is JobState.SUCCEEDED:
            return  # its follow-up delivers it
        try:
            await delivering.show_outcome(self.bot, done)
        except discord.HTTPException:
            log.exception("could not post the pictures of job %s", job.id)

    @commands.Cog.listener()
    async def on_picture_button_pressed(self, interaction: discord.Interaction, job: Job, changes: dict) -> None:
        """A button under pictures (bot.exts.imagine.buttons), pressed by their requester: the request again."""
        try:
            asked = await asking.again(self.bot, job.owner, job, **changes)
        except Refused as refusal:
            await refuse(interaction, refusal)
            return
        await asking.draw(self.bot, interaction, job.owner, asked)

    @app_commands.command(
        name="imagine", description="Draw a picture; your token goes in front unless you name someone"
    )
    @app_commands.describe(
        prompt="What to draw, e.g. 'as an astronaut on the moon'; @mention members who shared with you",
        count=f"How many pictures, {IMAGE_COUNT.low} to {IMAGE_COUNT.high}",
        seed="A seed, to make the same picture again",
        size="square, portrait (3:4) or landscape (4:3)",
        strength=f"How strongly the adapters act, {STRENGTH.low:g} (the base model) to {STRENGTH.high:g}; default 1",
        image="A photo: its faces redrawn as those named; on FLUX.2 [klein] with one person, the photo edited",
        style="One of this server's styles (see /style list), drawn over the whole picture",
        style_strength=f"How strongly the style acts, {STRENGTH.low:g} to {STRENGTH.high:g}; "
                       f"default {styling.DEFAULT_STRENGTH:g}",
    )
    @app_commands.choices(size=SIZE_CHOICES)
    @app_commands.guild_only()
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, PROMPT_LENGTH.low, PROMPT_LENGTH.high],
        count: app_commands.Range[int, IMAGE_COUNT.low, IMAGE_COUNT.high] = 1,
        seed: app_commands.Range[int, SEED.low, SEED.high] | None = None,
        size: app_commands.Choice[str] | None = None,
        strength: app_commands.Range[float, STRENGTH.low, STRENGTH.high] = 1.0,
        image: discord.Attachment | None = None,
        style: str | None = None,
        style_strength: app_commands.Range[float, STRENGTH.low, STRENGTH.high] = styling.DEFAULT_STRENGTH,
    ) -> None:
        await interaction.response.defer(thinking=True)
        asked = await self._ask(interaction, prompt, strength=strength, count=count, seed=seed,
                                size=size.value if size else "square", photo=image, style=style,
                                style_strength=style_strength)
        if asked is not None:
            await asking.draw(self.bot, interaction, owner_of(interaction), asked)

    @app_commands.command(name="compare", description="Your adapter beside the base model: same prompt, same seed")
    @app_commands.describe(prompt="What to draw; your token goes in front as in /imagine", seed="A seed (optional)",
                           style="One of this server's styles: the picture without it beside the picture with it")
    @app_commands.guild_only()
    async def compare(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, PROMPT_LENGTH.low, PROMPT_LENGTH.high],
        seed: app_commands.Range[int, SEED.low, SEED.high] | None = None,
        style: str | None = None,
    ) -> None:
        await interaction.response.defer(thinking=True)
        asked = await self._ask(interaction, prompt, strength=1.0, count=1, seed=seed, size="square", style=style)
        if asked is None:
            return
        if asked.plain and not asked.styles:
            await interaction.edit_original_response(content="You have no adapter to compare yet: /train makes one.")
            return
        asked = replace(asked, request=replace(asked.request, compare=True, group=None))  # one pass, side by side
        await asking.draw(self.bot, interaction, owner_of(interaction), asked)

    @imagine.autocomplete("style")
    @compare.autocomplete("style")
    async def style_names(self, interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
        """The names of this server's styles that begin with what is typed (Discord shows at most 25)."""
        if interaction.guild_id is None:
            return []
        styles = await self.bot.styles.in_guild(interaction.guild_id)
        return [app_commands.Choice(name=s.name, value=s.name) for s in styles
                if s.name.startswith(typed.strip().lower())][:25]

    async def _ask(self, interaction: discord.Interaction, prompt: str, *, strength: float,
                   **options) -> asking.Drawing | None:
        """The request for a prompt; None once the member was told why it cannot be drawn."""
        try:
            return await asking.from_prompt(self.bot, owner_of(interaction), prompt, strength=strength, **options)
        except Refused as refusal:
            await refuse(interaction, refusal)
            return None
