"""/imagine: pictures of members, in the channel, with their seeds and a re-roll button."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DoppelBot, owner_of
from bot.jobs.models import Job, JobKind, JobState, Owner
from bot.jobs.store import QueueFull
from bot.jobs.updates import JobUpdate
from bot.members.prompts import PromptRefused, resolve_prompt
from bot.members.store import adapter_name

log = logging.getLogger(__name__)

PROMPT_MAX = 1000
TOKEN_LIFE_S = 14 * 60  # Discord's is 15 minutes; after that, answer in the channel instead
SIZES = [app_commands.Choice(name=n, value=n) for n in ("square", "portrait", "landscape")]
RESULT_TIMEOUT_S = 30 * 60


class _PictureButton(discord.ui.DynamicItem[discord.ui.Button], template=r"doppel:(?:reroll|compare):(?P<job_id>\d+)"):
    """A button under pictures that makes new ones from the same request; only its requester may press it.

    Dynamic items, so the buttons still work after a restart. Subclasses name themselves and say
    what to change in the request.
    """

    key = ""  # in the custom id
    verb = ""  # in "Only @ann can ... these pictures"
    label = ""
    emoji = ""

    def __init__(self, job_id: int):
        super().__init__(
            discord.ui.Button(label=self.label, emoji=self.emoji, style=discord.ButtonStyle.secondary,
                              custom_id=f"doppel:{self.key}:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item, match: re.Match):
        return cls(int(match["job_id"]))

    def changed(self, job: Job) -> dict:
        raise NotImplementedError

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: DoppelBot = interaction.client
        job = await bot.jobs.get(self.job_id)
        if job is None or not job.result:
            await interaction.response.send_message("These pictures are from a request that no longer exists.",
                                                    ephemeral=True)
            return
        if job.owner != owner_of(interaction):
            await interaction.response.send_message(
                f"Only <@{job.owner.member_id}> can {self.verb} these pictures.", ephemeral=True
            )
            return
        await interaction.response.defer(thinking=True)
        await bot.get_cog("Imagine").draw(interaction, job.owner, self.changed(job))


class RerollButton(_PictureButton, template=r"doppel:reroll:(?P<job_id>\d+)"):
    """Same prompt, new seeds."""

    key, verb, label, emoji = "reroll", "re-roll", "Re-roll", "🎲"

    def changed(self, job: Job) -> dict:
        return {k: v for k, v in job.params.items() if k != "seed"}


class CompareButton(_PictureButton, template=r"doppel:compare:(?P<job_id>\d+)"):
    """The first picture again, beside what the base model makes of the same prompt and seed."""

    key, verb, label, emoji = "compare", "compare", "Compare with the base model", "🔍"

    def changed(self, job: Job) -> dict:
        seed = job.result["images"][0]["seed"]
        return {k: v for k, v in job.params.items() if k not in ("seed", "count")} | {
            "seed": seed, "count": 1, "compare": True,
        }


class Imagine(commands.Cog):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        self._posting: set[asyncio.Task] = set()

    async def cog_load(self) -> None:
        """Pictures asked for before a restart are still made: post them in their channel when they are."""
        for job in await self.bot.jobs.in_state(JobState.QUEUED, JobState.RUNNING, kind=JobKind.GENERATE):
            if job.params.get("channel_id"):
                task = asyncio.create_task(self._post_when_done(job))
                self._posting.add(task)
                task.add_done_callback(self._posting.discard)

    async def cog_unload(self) -> None:
        for task in self._posting:
            task.cancel()

    async def _post_when_done(self, job: Job) -> None:
        try:
            done = await self.bot.runner.wait(job.id, timeout=RESULT_TIMEOUT_S)
        except TimeoutError:
            log.warning("pictures of job %s were not ready in time after a restart", job.id)
            return
        try:
            await self._post(self.bot.get_partial_messageable(job.params["channel_id"]), done)
        except discord.HTTPException:
            log.exception("could not post the pictures of job %s", job.id)

    @app_commands.command(name="imagine", description="Draw a picture; your token goes in front unless you name someone")
    @app_commands.describe(
        prompt="What to draw, e.g. 'as an astronaut on the moon'; @mention members who shared with you",
        count="How many pictures, 1 to 4",
        seed="A seed, to make the same picture again",
        size="square, portrait (3:4) or landscape (4:3)",
        strength="How strongly the adapters act, 0 (the base model) to 1.5; default 1",
    )
    @app_commands.choices(size=SIZES)
    @app_commands.guild_only()
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_MAX],
        count: app_commands.Range[int, 1, 4] = 1,
        seed: app_commands.Range[int, 0, 2**32 - 5] | None = None,
        size: app_commands.Choice[str] | None = None,
        strength: app_commands.Range[float, 0.0, 1.5] = 1.0,
    ) -> None:
        await interaction.response.defer(thinking=True)
        owner = owner_of(interaction)
        request = await self._request(interaction, owner, prompt, seed, strength)
        if request is not None:
            size_name = size.value if size else "square"
            await self.draw(interaction, owner, request | {"count": count, "size": size_name})

    @app_commands.command(name="compare", description="Your adapter beside the base model: same prompt, same seed")
    @app_commands.describe(prompt="What to draw; your token goes in front as in /imagine", seed="A seed (optional)")
    @app_commands.guild_only()
    async def compare(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_MAX],
        seed: app_commands.Range[int, 0, 2**32 - 5] | None = None,
    ) -> None:
        await interaction.response.defer(thinking=True)
        owner = owner_of(interaction)
        request = await self._request(interaction, owner, prompt, seed, strength=1.0)
        if request is None:
            return
        if request["plain"]:
            await interaction.edit_original_response(content="You have no adapter to compare yet: /train makes one.")
            return
        await self.draw(interaction, owner, request | {"count": 1, "size": "square", "compare": True})

    async def _request(
        self, interaction: discord.Interaction, owner: Owner, prompt: str, seed: int | None, strength: float
    ) -> dict | None:
        """The prompt by the token rule, with the adapters of everyone it names; None once refused."""
        try:
            resolved = await resolve_prompt(prompt, owner, self.bot.members)
        except PromptRefused as refusal:
            await interaction.edit_original_response(content=f"I cannot draw that: {refusal}.")
            return None
        adapters = [
            {
                "name": adapter_name(person),
                "path": (await self.bot.members.adapter(person)).path,
                "weight": resolved.weights.get(person, strength),
            }
            for person in resolved.owners
        ]
        request = {"prompt": resolved.text, "adapters": adapters, "plain": resolved.plain}
        if seed is not None:
            request["seed"] = seed
        return request

    async def draw(self, interaction: discord.Interaction, owner: Owner, params: dict) -> None:
        """Queue the pictures, keep the reply up to date, then post them."""
        started = time.monotonic()
        # Where to post if the bot restarts before the pictures are ready (the interaction is gone then).
        params = params | {"channel_id": interaction.channel_id}
        try:
            job = await self.bot.runner.submit_generation(owner, params)
        except QueueFull as full:
            await interaction.edit_original_response(content=f"Not now: {full}.")
            return

        async def show(update: JobUpdate) -> None:
            if update.state is JobState.QUEUED and update.position and time.monotonic() - started < TOKEN_LIFE_S:
                await interaction.edit_original_response(content=f"Queued: number {update.position} in line…")

        self.bot.runner.subscribe(job.id, show)
        done = await self.bot.runner.wait(job.id, timeout=RESULT_TIMEOUT_S)
        await self.deliver(interaction, done, fresh=time.monotonic() - started < TOKEN_LIFE_S)

    async def deliver(self, interaction: discord.Interaction, job: Job, fresh: bool) -> None:
        if not fresh:  # the interaction token may have expired: say it in the channel
            await self._post(interaction.channel, job)
            return
        text, files, view = self._message(job)
        await interaction.edit_original_response(
            content=text, attachments=files, view=view, allowed_mentions=discord.AllowedMentions.none()
        )

    async def _post(self, channel: discord.abc.Messageable, job: Job) -> None:
        """The pictures in the channel, mentioning the requester: when their interaction is gone."""
        text, files, view = self._message(job)
        member = discord.Object(job.owner.member_id)
        await channel.send(f"<@{member.id}> {text}", files=files, view=view,
                           allowed_mentions=discord.AllowedMentions(users=[member]))

    def _message(self, job: Job) -> tuple[str, list[discord.File], discord.ui.View | None]:
        """The pictures of a finished job as a message: text, files and buttons (or why there are none)."""
        if job.state is not JobState.SUCCEEDED:
            text = f"No picture this time: {job.error or job.state.value}."
            files, view = [], None
        else:
            images = job.result["images"]
            seeds = ", ".join(str(i["seed"]) for i in images)
            note = " (plain model: you have no adapter yet, /train makes one)" if job.params.get("plain") else ""
            if job.params.get("compare"):
                note = " · left: the base model, right: with the adapter"
            text = f"**{discord.utils.escape_markdown(job.params['prompt'])[:1500]}**\nseed{'s' if len(images) > 1 else ''} {seeds}{note}"
            files = [discord.File(i["path"], f"doppel-{i['seed']}.png") for i in images]
            view = discord.ui.View(timeout=None)
            view.add_item(RerollButton(job.id))
            if job.params.get("adapters") and not job.params.get("compare"):
                view.add_item(CompareButton(job.id))
        return text, files, view


async def setup(bot: DoppelBot) -> None:
    bot.add_dynamic_items(RerollButton, CompareButton)
    await bot.add_cog(Imagine(bot))
