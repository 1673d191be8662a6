"""Pictures in a server's style through the Discord stand-in, a real local Ray and the tiny model: /imagine and
/compare with `style:`, the adapters a picture is drawn with, consent where the work happens, and erasure.

The style is seeded straight in the record (its /style commands are another part's): a trained tiny adapter,
its B matrices negated so that it is another adapter than ann's, with `doppel.subject` = style in its header.
"""

from __future__ import annotations

import io
import sqlite3

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from bot.members.owner import Owner, adapter_name
from bot.styles.store import Style
from contract import AdapterRef, GenerateRequest, JobState, adapter_identity
from contract.models import FACTS_PREFIX
from contract.subjects import FACT_KEY, STYLE, style_phrase
from fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)
from tests.bot.conftest import remove_actors
from tests.bot.test_bot import started, world  # noqa: F401  (fixture)
from tests.bot.test_forget import forget

PREFIX = "stylepic"
TOKEN = "BRND42"


@pytest.fixture(scope="module")
def actors(local_ray):
    """This module's Ray workers (the world fixture asks for them by this name)."""
    yield PREFIX
    remove_actors(PREFIX)


async def give_style_adapter(bot, style: Style, trained_path, sign: float = -1.0) -> str:
    """The style's adapter: the trained one with its B matrices scaled by `sign`, marked a style. Its identity."""
    tensors = {k: sign * v if "lora_B" in k else v for k, v in load_file(trained_path).items()}
    path = bot.members.adapter_file(style.owner)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path, metadata={f"{FACTS_PREFIX}{FACT_KEY}": STYLE, f"{FACTS_PREFIX}token": style.token})
    identity = adapter_identity(path.read_bytes())
    await bot.members.set_adapter(style.owner, path, None, 30, identity=identity)
    return identity


def png_text(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as picture:
        return dict(picture.info)


def drawn_rows(settings, job_id: int) -> list[int]:
    with sqlite3.connect(settings.database_file) as db:
        return [m for (m,) in db.execute("SELECT member_id FROM job_people WHERE job_id = ? ORDER BY seq", (job_id,))]


async def picture(w, member, timeout: float = 90, **options):
    asked = await w.fake.slash(member, w.general, "imagine", options=options)
    return await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=timeout)


async def refused(w, member, channel, command: str = "imagine", **options) -> str:
    asked = await w.fake.slash(member, channel, command, options=options)
    said = await asked.wait_followup(lambda m: "cannot draw" in m.content)
    assert said.ephemeral and not said.attachments
    return said.content


async def test_a_style_is_drawn_with_the_people_at_their_strengths_and_on_its_own_server_only(world, trained):
    w = world
    elsewhere = w.fake.add_guild("Elsewhere")
    carol, lobby = elsewhere.add_member("carol"), elsewhere.add_text_channel("lobby")
    many = [w.guild.add_member(f"m{k}") for k in range(4)]
    async with started(w) as bot:
        ann = w.owner(w.ann)
        await bot.token_for(ann)
        await bot.members.set_adapter(ann, trained.lora_path, None, 30, identity=None)
        await bot.members.share(ann, w.bob.id)
        brand = await bot.styles.create(w.guild.id, "brand", created_by=w.boss.id, token=TOKEN)
        assert "has no adapter yet" in await refused(w, w.bob, w.general, style="brand", prompt="a poster")
        style_identity = await give_style_adapter(bot, brand, trained.lora_path)
        ann_name, brand_name = adapter_name(ann), adapter_name(brand.owner)

        # bob's picture of ann in the brand style: exactly both adapters, each at its strength, as the worker
        # that drew it writes into the picture; the style's phrase after the prompt.
        shown = await picture(w, w.bob, style="brand", style_strength=0.6, strength=0.9, seed=5,
                              prompt=f"<@{w.ann.id}> presenting the poster")
        text = png_text(shown.attachments[0].data)
        assert text["doppel:adapters"] == f"{ann_name}:0.9, {brand_name}:0.6"
        assert text["doppel:prompt"].endswith(f"presenting the poster, {style_phrase(TOKEN)}")
        (job,) = await bot.jobs.of_owner(w.owner(w.bob), JobState.SUCCEEDED)
        request = job.picture_request
        assert [(a.name, a.subject) for a in request.adapters] == [(ann_name, "person"), (brand_name, STYLE)]
        assert request.styles[0].identity == style_identity
        assert job.notes.people == (w.ann.id,) and job.notes.styles == (brand.owner.member_id,)
        assert drawn_rows(w.settings, job.id) == [w.ann.id, brand.owner.member_id]

        # A re-roll keeps the style, at its strength.
        reroll = next(c for c, _, _ in shown.buttons() if c and c.startswith("doppel:reroll:"))
        pressed = await w.fake.click(w.bob, shown, reroll)
        again = await w.fake.wait_for_edit(await pressed.original(), lambda m: m.attachments, timeout=90)
        assert png_text(again.attachments[0].data)["doppel:adapters"] == f"{ann_name}:0.9, {brand_name}:0.6"

        # Without a style, a picture is as it was: ann's adapter alone, the prompt untouched.
        plain = await picture(w, w.bob, seed=5, prompt=f"<@{w.ann.id}> presenting the poster")
        text = png_text(plain.attachments[0].data)
        assert text["doppel:adapters"] == f"{ann_name}:1" and TOKEN not in text["doppel:prompt"]

        # /compare with the style: without it beside with it (the request says so; the worker draws the halves).
        compared = await w.fake.slash(w.bob, w.general, "compare", options={
            "prompt": f"<@{w.ann.id}> presenting the poster", "style": "brand", "seed": 5})
        halves = await w.fake.wait_for_edit(await compared.original(), lambda m: m.attachments, timeout=90)
        assert "left: without the style, right: with it" in halves.content
        last = (await bot.jobs.of_owner(w.owner(w.bob), JobState.SUCCEEDED))[-1].picture_request
        assert last.compare and last.compared_with == last.people and last.styles[0].name == brand_name

        # Words for what cannot be: a style the server does not have, too many adapters for one picture.
        assert "this server has no style called 'poster' (see /style list)" in await refused(
            w, w.bob, w.general, style="poster", prompt="a poster")
        for member in many:
            await bot.token_for(w.owner(member))
            await bot.members.set_adapter(w.owner(member), trained.lora_path, None, 30, identity=None)
            await bot.members.share(w.owner(member), w.bob.id)
        crowd = " and ".join(f"<@{m.id}>" for m in many)
        assert "at most 4 adapters, and this one has 4 people and a style" in await refused(
            w, w.bob, w.general, style="brand", prompt=f"{crowd} at the office")

        # Another server has no 'brand': carol cannot name it, and a forged request of hers that names it
        # (its adapter's file and identity included) is refused as the job starts, drawing nothing.
        assert "this server has no style called 'brand'" in await refused(w, carol, lobby, style="brand",
                                                                          prompt="a poster")
        carols = Owner(elsewhere.id, carol.id)
        # Named as the style is on its server, as if it were carol's server's, or without naming its rows at all.
        unnamed, gone = "this request does not say which styles it uses", "a style this was asked with no longer exists"
        for name, styles, why in ((brand_name, [brand.owner.member_id], unnamed),
                                  (adapter_name(Owner(elsewhere.id, brand.owner.member_id)), [brand.owner.member_id],
                                   gone),
                                  (brand_name, [], unnamed)):
            forged = GenerateRequest(base=bot.settings.picture_model, prompt=f"a poster, {style_phrase(TOKEN)}",
                                     adapters=(AdapterRef(name, style_identity, 0.8, subject=STYLE),))
            job = await bot.runner.submit_generation(carols, forged,
                                                     {style_identity: str(bot.members.adapter_file(brand.owner))},
                                                     styles=styles)
            done = await bot.runner.wait(job.id, timeout=60)
            assert done.state is JobState.FAILED and done.pictures is None
            assert done.error is not None and why in done.error

        # The style retrained: bob's old button does not reach the new adapter.
        await give_style_adapter(bot, brand, trained.lora_path, sign=2.0)
        pressed = await w.fake.click(w.bob, shown, reroll)
        said = await pressed.wait_followup(lambda m: "cannot draw" in m.content)
        assert "the style 'brand' has changed since this was asked for" in said.content and not said.attachments


async def test_forgetting_a_member_leaves_the_style_and_erasing_the_style_deletes_its_pictures(world, trained):
    w = world
    async with started(w) as bot:
        ann = w.owner(w.ann)
        await bot.token_for(ann)
        await bot.members.set_adapter(ann, trained.lora_path, None, 30, identity=None)
        await bot.members.share(ann, w.bob.id)
        brand = await bot.styles.create(w.guild.id, "brand", created_by=w.boss.id, token=TOKEN)
        await give_style_adapter(bot, brand, trained.lora_path)

        of_ann_in_style = await picture(w, w.bob, style="brand", prompt=f"<@{w.ann.id}> presenting the poster")
        in_style = await picture(w, w.bob, style="brand", prompt="a poster for the summer sale")
        assert "plain model" not in in_style.content  # bob has no adapter: the style alone
        assert png_text(in_style.attachments[0].data)["doppel:adapters"] == f"{adapter_name(brand.owner)}:0.8"

        # ann is forgotten: the picture of her goes, style or not; the style and its adapter stay.
        assert "Deleted" in await forget(w, w.ann, w.general)
        assert of_ann_in_style.deleted and not in_style.deleted
        assert await bot.styles.named(w.guild.id, "brand") == brand
        kept = await bot.members.adapter(brand.owner)
        assert kept is not None and bot.members.adapter_file(brand.owner).is_file()

        # The style erased (as /style forget does): the pictures drawn in it go with its rows and files.
        await bot.forget_member(brand.owner)
        assert in_style.deleted
        assert await bot.styles.named(w.guild.id, "brand") is None
        assert not bot.members.folder(brand.owner).exists()
        assert not await bot.jobs.of_owner(w.owner(w.bob), JobState.SUCCEEDED)
