"""/style add, list, pictures, caption, remove, train and forget: the server's own looks, kept by its team.

Who may create, train and delete a style is a setting (STYLE_ROLES; empty: members with Manage Server),
checked at every command that changes one and again as its training starts (bot/members/access.py). Anyone
in the server may list the styles and see their pictures, as anyone there may draw with them; no other
server sees them. A style's rows are under its own owner (bot/styles/store.py), so /forget of a member never
reaches them, and /style forget deletes them, with the style's files and messages, as /forget does a member's.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot import captions, intake
from bot.app import DoppelBot, owner_of, roles
from bot.captions import CAPTION_MAX, check_caption
from bot.exts.style.pictures import StylePictures
from bot.exts.training.starting import start_training
from bot.members.erasure import describe
from bot.members.quotas import sentence
from bot.styles.store import Style, name_problem
from bot.ui.contact_sheet import contact_sheet
from contract import JobKind, JobState
from contract.limits import MEMBER_STEPS


def _caption(text: str) -> tuple[str, str | None]:
    """The caption as kept, and why it cannot be one (bot.captions.check_caption's reason) or None."""
    try:
        return check_caption(text), None
    except intake.Rejected as refusal:
        return "", refusal.reason


@app_commands.guild_only()
class Styles(commands.GroupCog, group_name="style", group_description="The server's own looks: team styles"):
    def __init__(self, bot: DoppelBot):
        self.bot = bot
        self.pictures = StylePictures(bot)
        super().__init__()

    async def cog_unload(self) -> None:
        self.pictures.close()

    async def _refused(self, interaction: discord.Interaction) -> bool:
        """Whether the member may not change the server's styles; if so, they were told why."""
        denied = await self.bot.access.style_refusal(
            owner_of(interaction), roles(interaction.user), interaction.permissions.manage_guild
        )
        if denied is not None:
            await _say(interaction, f"{sentence(denied)} Nothing was changed.")
        return denied is not None

    async def _style(self, interaction: discord.Interaction, name: str) -> Style | None:
        """This server's style `name`; None once the member was told there is none."""
        style = await self.bot.styles.named(interaction.guild_id or 0, name.strip().lower())
        if style is None:
            await _say(interaction, f"This server has no style called `{captions.shown(name[:40])}`; "
                                    "/style list shows its styles.")
        return style

    async def _training(self, style: Style) -> bool:
        active = await self.bot.jobs.of_owner(style.owner, JobState.QUEUED, JobState.RUNNING)
        return any(job.kind is JobKind.TRAIN for job in active)

    @app_commands.command(name="add", description="Add design pictures to a style (made on the first add)")
    @app_commands.describe(
        name="The style's name, e.g. brand (lower-case letters, digits, - and _)",
        picture="A design picture without people: a logo, illustration, product shot, screenshot",
        caption="What the picture shows, leaving the style out, e.g. 'a poster with a bicycle' (optional)",
    )
    async def add(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 32], picture: discord.Attachment,
        caption: app_commands.Range[str, 0, CAPTION_MAX] = "",
        picture2: discord.Attachment | None = None, picture3: discord.Attachment | None = None,
        picture4: discord.Attachment | None = None, picture5: discord.Attachment | None = None,
        picture6: discord.Attachment | None = None, picture7: discord.Attachment | None = None,
        picture8: discord.Attachment | None = None, picture9: discord.Attachment | None = None,
        picture10: discord.Attachment | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if await self._refused(interaction):
            return
        text, refused = _caption(caption)
        problem = name_problem(name) or refused
        if problem:
            await _say(interaction, f"No picture was added: {problem}.")
            return
        style = await self.bot.styles.named(interaction.guild_id or 0, name)
        made = ""
        if style is None:
            try:
                style = await self.bot.create_style(interaction.guild_id or 0, name, interaction.user.id)
            except ValueError as taken:  # made by someone else a moment ago: theirs is used
                style = await self.bot.styles.named(interaction.guild_id or 0, name)
                if style is None:
                    await _say(interaction, f"No picture was added: {taken}.")
                    return
            else:
                made = f"Made the style `{name}`, trigger token `{style.token}`.\n"
        attachments = [a for a in (picture, picture2, picture3, picture4, picture5, picture6, picture7, picture8,
                                   picture9, picture10) if a]
        lines = await self.pictures.add(style, attachments, text)
        await _say(interaction, made + "\n".join(lines))

    @app_commands.command(name="list", description="This server's styles")
    async def list_styles(self, interaction: discord.Interaction) -> None:
        styles = await self.bot.styles.in_guild(interaction.guild_id or 0)
        if not styles:
            await _say(interaction, "This server has no styles yet. Someone allowed to make one starts it with "
                                    "/style add.")
            return
        lines = []
        for style in styles:
            pictures = len(await self.bot.members.photos(style.owner))
            adapter = await self.bot.members.adapter(style.owner)
            trained = f"trained for {adapter.steps} steps" if adapter else "not trained yet"
            if await self._training(style):
                trained += ", training now"
            lines.append(f"`{style.name}`: token `{style.token}`, {pictures} pictures, {trained}")
        await _say(interaction, "This server's styles (draw with `/imagine style:NAME ...`):\n" + "\n".join(lines))

    @app_commands.command(name="pictures", description="See a style's pictures and captions")
    @app_commands.describe(name="The style's name")
    async def show_pictures(self, interaction: discord.Interaction, name: str) -> None:
        style = await self._style(interaction, name)
        if style is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        pictures = await self.bot.members.photos(style.owner)
        if not pictures:
            await _say(interaction, f"The style `{style.name}` has no pictures yet; /style add adds some.")
            return
        sheet = await asyncio.to_thread(contact_sheet, [(p.number, p.path, p.caption) for p in pictures])
        bare = sum(1 for p in pictures if not p.caption.strip())
        why = f"\n{bare} without a caption get one when it trains: what the picture shows, not its style." \
            if bare and self.bot.settings.caption_model else ""
        await interaction.followup.send(
            f"The style `{style.name}`: {len(pictures)} pictures. Change a caption with /style caption, remove one "
            "with /style remove." + why,
            file=discord.File(io.BytesIO(sheet), "pictures.png"), ephemeral=True,
        )

    @app_commands.command(name="caption", description="Change the caption of one of a style's pictures")
    @app_commands.describe(name="The style's name", number="The picture's number in /style pictures",
                           text="What the picture shows, leaving the style out")
    async def caption(
        self, interaction: discord.Interaction, name: str, number: app_commands.Range[int, 1, 200],
        text: app_commands.Range[str, 0, CAPTION_MAX],
    ) -> None:
        if await self._refused(interaction):
            return
        style = await self._style(interaction, name)
        if style is None:
            return
        kept, refused = _caption(text)
        if refused:
            await _say(interaction, f"The caption was not changed: {refused}.")
            return
        picture = await self.bot.members.set_caption(style.owner, number, kept)
        reads = captions.shown(kept) or "(no caption)"
        await _say(interaction, f"Picture {number} of `{style.name}` now reads: {reads}" if picture
                   else _no_picture(style, number))

    @app_commands.command(name="remove", description="Remove one of a style's pictures")
    @app_commands.describe(name="The style's name", number="The picture's number in /style pictures")
    async def remove(self, interaction: discord.Interaction, name: str,
                     number: app_commands.Range[int, 1, 200]) -> None:
        if await self._refused(interaction):
            return
        style = await self._style(interaction, name)
        if style is None:
            return
        if await self._training(style):  # its run holds a copy, numbered as now (see /dataset remove)
            await _say(interaction, f"The style `{style.name}` is training, and its run holds a copy of its "
                                    "pictures until it ends; try again once it has finished.")
            return
        picture = await self.bot.members.remove_photo(style.owner, number)
        if picture is None:
            await _say(interaction, _no_picture(style, number))
            return
        await asyncio.to_thread(Path(picture.path).unlink, missing_ok=True)
        left = len(await self.bot.members.photos(style.owner))
        await _say(interaction, f"Removed picture {number} ({picture.shown_name}) from `{style.name}`; it has "
                                f"{left} left, and the numbers after it moved up.")

    @app_commands.command(name="train", description="Train a style on its pictures")
    @app_commands.describe(name="The style's name", steps="Training steps (default: the style's)",
                           fresh="Start from zero instead of building on the style's adapter")
    async def train(self, interaction: discord.Interaction, name: str,
                    steps: app_commands.Range[int, MEMBER_STEPS.low, MEMBER_STEPS.high] | None = None,
                    fresh: bool = False) -> None:
        if await self._refused(interaction):
            return
        style = await self._style(interaction, name)
        if style is None:
            return
        await start_training(self.bot, interaction, steps, fresh=fresh, style=style)  # checks the asker again

    @app_commands.command(name="forget", description="Delete a style: its pictures, adapter, trainings and messages")
    @app_commands.describe(name="The style's name")
    async def forget(self, interaction: discord.Interaction, name: str) -> None:
        if await self._refused(interaction):
            return
        style = await self._style(interaction, name)
        if style is None:
            return
        pictures = len(await self.bot.members.photos(style.owner))
        await interaction.response.send_message(
            f"This deletes the style `{style.name}` for everyone here: its {pictures} pictures, its adapter, "
            "trainings and checkpoints, the pictures drawn with it and my messages that show them, for good. Sure?",
            view=ForgetStyle(self, style, interaction.user.id), ephemeral=True,
        )

    @show_pictures.autocomplete("name")
    @caption.autocomplete("name")
    @remove.autocomplete("name")
    @train.autocomplete("name")
    @forget.autocomplete("name")
    async def _names(self, interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
        styles = await self.bot.styles.in_guild(interaction.guild_id or 0)
        return [app_commands.Choice(name=s.name, value=s.name) for s in styles if typed.lower() in s.name][:25]


class ForgetStyle(discord.ui.View):
    """The confirmation of /style forget, for the member who asked."""

    def __init__(self, cog: Styles, style: Style, asker: int):
        super().__init__(timeout=120)
        self.cog, self.style, self.asker = cog, style, asker

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.asker

    @discord.ui.button(label="Delete the style", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        if await self.cog._refused(interaction):  # their role may have gone since they asked
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        forgotten = await self.cog.bot.forget_style(self.style, interaction.user.id)
        await interaction.followup.send(
            f"Done. The style `{self.style.name}` is gone: deleted {describe(forgotten, 'it')}.", ephemeral=True
        )

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


async def _say(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer, whether or not the interaction was deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(text[:2000], ephemeral=True)
    else:
        await interaction.response.send_message(text[:2000], ephemeral=True)


def _no_picture(style: Style, number: int) -> str:
    return f"The style `{style.name}` has no picture {number}; /style pictures shows them and their numbers."
