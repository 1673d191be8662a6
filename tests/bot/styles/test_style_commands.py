"""A style made, trained and used through /style and /imagine, on the Discord stand-in, a real local Ray and the
tiny model: the issue's whole path (#24), with who may change a style and what /forget of a member leaves."""

from __future__ import annotations

import pytest
from PIL import Image
from skimage import data as skimage_data

from bot.members.owner import adapter_name
from contract.models import adapter_facts
from contract.subjects import STYLE
from fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)
from tests.bot.conftest import remove_actors
from tests.bot.styles.test_style_pictures import png_text
from tests.bot.test_bot import jpeg, started, world  # noqa: F401  (fixture)
from tests.bot.test_forget import forget
from tests.trainer.designs import design

PREFIX = "stylecmd"


@pytest.fixture(scope="module")
def actors(local_ray):
    yield PREFIX
    remove_actors(PREFIX)


def designs(count: int) -> dict:
    names = ["picture"] + [f"picture{k}" for k in range(2, 11)]
    return {names[k]: (f"design-{k}.jpg", jpeg(design(k)), "image/jpeg") for k in range(count)}


async def said(w, member, channel, command: str, done: str, **options) -> str:
    """The answer to a command that says `done`: its first response, or a follow-up after a deferral."""
    asked = await w.fake.slash(member, channel, command, options=options)
    first = await asked.original()
    if done in first.content:
        return first.content
    return (await asked.wait_followup(lambda m: done in m.content, timeout=60)).content


async def test_an_admin_trains_brand_and_a_member_draws_ann_in_it(world, trained):
    w = world
    # Face checks on (the suite turns them off for its drawn faces): the warning is what is tested.
    w.settings = w.settings.model_copy(update={"style_min_pictures": 4, "face_checks": True})
    elsewhere = w.fake.add_guild("Elsewhere")
    carol, lobby = elsewhere.add_member("carol"), elsewhere.add_text_channel("lobby")
    async with started(w) as bot:
        # The admin's faceless designs are taken; the one with a face is taken with a warning.
        uploads = designs(4) | {"picture5": ("astronaut.jpg", jpeg(Image.fromarray(skimage_data.astronaut())),
                                             "image/jpeg")}
        added = await w.fake.slash(w.boss, w.general, "style add", options={"name": "brand"}, attachments=uploads)
        report = (await added.wait_followup(lambda m: "added as picture" in m.content, timeout=60)).content
        assert report.count("✅") == 5 and report.count("⚠️") == 1, report
        warned = next(line for line in report.splitlines() if "astronaut.jpg" in line)
        assert "shows a face" in warned
        brand = await bot.styles.named(w.guild.id, "brand")
        assert brand is not None and len(await bot.members.photos(brand.owner)) == 5
        assert all(p.look is None for p in await bot.members.photos(brand.owner))  # no one's face data

        # Bob holds no role for styles: he can neither add to, train nor delete it, and nothing changes.
        for command, options in (("style train", {"name": "brand"}), ("style forget", {"name": "brand"})):
            refused = await said(w, w.bob, w.general, command, "Nothing was changed", **options)
            assert "Nothing was changed" in refused
        bobs = await w.fake.slash(w.bob, w.general, "style add", options={"name": "brand"}, attachments=designs(1))
        assert "Nothing was changed" in (await bobs.wait_followup(lambda m: "Nothing" in m.content)).content
        assert len(await bot.members.photos(brand.owner)) == 5 and await bot.styles.named(w.guild.id, "brand")

        queued = await said(w, w.boss, w.general, "style train", "queued", name="brand", steps=10)
        assert "Training of the style `brand` queued" in queued
        await w.general.wait_for_message(lambda m: "The style `brand` is ready" in m.content, timeout=240)
        adapter = await bot.members.adapter(brand.owner)
        assert adapter is not None and adapter_facts(adapter.path)["subject"] == STYLE

        # Bob draws ann (who shares with him) in the brand style: both adapters, each at its strength.
        ann = w.owner(w.ann)
        await bot.token_for(ann)
        await bot.members.set_adapter(ann, trained.lora_path, None, 30, identity=None)
        await bot.members.share(ann, w.bob.id)
        asked = await w.fake.slash(w.bob, w.general, "imagine", options={
            "prompt": f"<@{w.ann.id}> presenting the poster", "style": "brand", "style_strength": 0.7,
            "strength": 0.9, "seed": 3})
        shown = await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=120)
        assert png_text(shown.attachments[0].data)["doppel:adapters"] == (
            f"{adapter_name(ann)}:0.9, {adapter_name(brand.owner)}:0.7")

        # Another server has no brand.
        assert "no styles yet" in await said(w, carol, lobby, "style list", "no styles")
        other = await w.fake.slash(carol, lobby, "imagine", options={"prompt": "a poster", "style": "brand"})
        assert "no style called 'brand'" in (await other.wait_followup(lambda m: "cannot draw" in m.content)).content

        # /forget of ann leaves the team's style, its pictures and its adapter.
        assert "Deleted" in await forget(w, w.ann, w.general)
        kept = await bot.styles.named(w.guild.id, "brand")
        assert kept == brand and len(await bot.members.photos(brand.owner)) == 5
        assert await bot.members.adapter(brand.owner) is not None
