"""/adapter download and /adapter upload: a member takes their adapter to other tools, or brings one of their own.

Both convert and check without torch (contract.lora_formats), in a thread: nothing heavy on the event loop.
An adapter is a likeness of its owner, so it is sent to them alone, ephemerally.
"""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot import intake
from bot.app import DoppelBot, owner_of
from contract.base_shapes import base_family, base_folder, transformer_shapes
from contract.lora_formats import EXPORT_FORMATS, MAX_UPLOAD_BYTES, LoraFormatError, check_upload, export
from contract.models import FACTS_PREFIX, FAMILY_TITLES, adapter_facts
from contract.safetensors_raw import encode, read

log = logging.getLogger(__name__)

WHERE_IT_LOADS = {
    "comfyui": "ComfyUI and kohya (keys `lora_unet_…`; diffusers' `load_lora_weights` reads it too)",
    "diffusers": "diffusers (`pipe.load_lora_weights(file)`)",
}


def _exports(path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """The adapter in each format it can be sent in, and why not in the others."""
    data = path.read_bytes()
    made, refused = {}, {}
    for key_format in EXPORT_FORMATS:
        try:
            made[key_format] = export(data, key_format)
        except LoraFormatError as exc:
            refused[key_format] = str(exc)
    return made, refused


def _as_theirs(data: bytes, facts: dict[str, str]) -> bytes:
    """The member's file with doppel's facts added to its header; its tensors as they came."""
    tensors, metadata = read(data)
    return encode(tensors, metadata | {FACTS_PREFIX + k: v for k, v in facts.items()})


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


class AdapterFiles(commands.Cog):
    adapter = app_commands.Group(name="adapter", description="Take your adapter to other tools, or bring your own")

    def __init__(self, bot: DoppelBot):
        self.bot = bot
        settings = bot.settings
        self.limits = intake.IntakeLimits(allowed_hosts=tuple(settings.attachment_hosts),
                                          allowed_schemes=tuple(settings.attachment_schemes))

    @adapter.command(name="download", description="Your adapter as files for ComfyUI, kohya and diffusers")
    @app_commands.describe(member="Whose adapter: only your own is sent")
    async def download(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        if member is not None and member.id != interaction.user.id:
            await interaction.response.send_message(
                f"Only {member.display_name} can download their adapter: it is a likeness of them, so I send it "
                "to them alone.", ephemeral=True)
            return
        owner = owner_of(interaction)
        adapter = await self.bot.adapters.current(owner)
        if adapter is None or not await asyncio.to_thread(Path(adapter.path).is_file):
            await interaction.response.send_message(
                "You have no adapter yet: /train makes one, or /adapter upload brings your own.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        made, refused = await asyncio.to_thread(_exports, Path(adapter.path))
        facts = await asyncio.to_thread(adapter_facts, adapter.path)
        token, base = facts.get("token") or await self.bot.members.token(owner), facts.get("base_model", "unknown")
        limit = interaction.filesize_limit
        stem = f"doppel-{token or 'adapter'}"
        files, lines = [], [f"Your adapter: trigger token `{token}`, trained for `{base}` (both are also in each "
                            "file's metadata). Write the token in your prompt to draw yourself."]
        for key_format, data in made.items():
            name = f"{stem}-{key_format}.safetensors"
            if len(data) <= limit:
                files.append(discord.File(io.BytesIO(data), filename=name))
                lines.append(f"`{name}` ({_mib(len(data))}) loads in {WHERE_IT_LOADS[key_format]}.")
            else:
                lines.append(f"`{name}` would be {_mib(len(data))}, more than the {_mib(limit)} Discord lets me "
                             "attach in this server, so I cannot send it here. A server admin can make it on my "
                             f"machine with `python -m trainer export --format {key_format}`.")
        lines += [f"No {key_format} file: {why}." for key_format, why in refused.items()]
        await interaction.followup.send("\n".join(lines), files=files, ephemeral=True)

    @adapter.command(name="upload", description="Make your own .safetensors LoRA (kohya, ai-toolkit or diffusers) "
                                                "your adapter")
    @app_commands.describe(file="A .safetensors LoRA trained on this server's model family")
    async def upload(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        owner = owner_of(interaction)
        name = file.filename
        refusal = None
        if not name.lower().endswith(".safetensors"):
            refusal = ("I take .safetensors files only; .ckpt, .pt and .bin files are pickles, which can run any code "
                       "when opened, so I never open one.")
        elif file.size > MAX_UPLOAD_BYTES:
            refusal = f"That file is {_mib(file.size)}; I take adapters up to {_mib(MAX_UPLOAD_BYTES)}."
        else:
            try:
                intake.check_source_url(file.url, self.limits)
            except intake.Rejected as exc:
                refusal = f"I cannot fetch that file: {exc}."
        if refusal:
            await interaction.response.send_message(f"I did not take `{name}`. {refusal}", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await file.read()
        settings = self.bot.settings
        base = settings.picture_model
        folder = await asyncio.to_thread(base_folder, base, settings.model_cache_dir)
        family = base_family(base, folder)
        try:
            checked = await asyncio.to_thread(
                lambda: check_upload(data, family, transformer_shapes(folder)))
            token = await self.bot.token_for(owner)
            facts = {"token": token, "family": family, "base_model": base, "source": "upload", "uploaded_as": name}
            stored = await asyncio.to_thread(_as_theirs, data, facts)
        except LoraFormatError as exc:
            await interaction.followup.send(f"I did not take `{name}`. {exc} Your adapter is unchanged.",
                                            ephemeral=True)
            return
        refused = await self.bot.adapters.take(owner, stored)
        if refused:
            await interaction.followup.send(f"I did not take `{name}`. {refused}", ephemeral=True)
            return
        log.info("member %s of guild %s uploaded a %s adapter (%d layers)", owner.member_id, owner.guild_id,
                 checked.key_format, checked.layers)
        theirs = checked.facts.get("token")
        trained_word = f" It was trained with the word `{theirs}`; write it too." if theirs and theirs != token else \
            " Write the word it was trained with beside it, if it had one."
        await interaction.followup.send(
            f"`{name}` is now your adapter ({checked.key_format} keys, {checked.layers} layers, for "
            f"{FAMILY_TITLES[family]}). /imagine draws you with it when a prompt names you by `{token}`."
            f"{trained_word}", ephemeral=True)


async def setup(bot: DoppelBot) -> None:
    await bot.add_cog(AdapterFiles(bot))
