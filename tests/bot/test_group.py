"""Group pictures through the Discord stand-in: /imagine with two people, with and without a team photo."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from fake_discord.fixtures import fake_discord, running_bot  # noqa: F401  (fixture)
from tests.bot.conftest import remove_actors
from tests.bot.test_bot import PNG, started, world  # noqa: F401  (fixture)
from tests.trainer.test_group import two_astronauts

PREFIX = "group"


@pytest.fixture(scope="module")
def actors(local_ray):
    """This module's Ray workers (the world fixture asks for them by this name)."""
    yield PREFIX
    remove_actors(PREFIX)


def team_photo() -> bytes:
    buffer = io.BytesIO()
    two_astronauts().save(buffer, format="PNG")
    return buffer.getvalue()


async def test_imagine_with_two_people_draws_each_face_with_its_own_adapter(world, trained, tmp_path):
    w = world
    bobs = tmp_path / "bob.safetensors"  # another adapter: the trained one with its B matrices negated
    save_file({k: -v if "lora_B" in k else v for k, v in load_file(trained.lora_path).items()}, bobs)
    anns = tmp_path / "ann.safetensors"
    shutil.copy(trained.lora_path, anns)
    async with started(w) as bot:
        for member, path in ((w.ann, anns), (w.bob, bobs)):
            await bot.token_for(w.owner(member))
            await bot.members.set_adapter(w.owner(member), path, None, 30, identity=None)
        prompt = f"<@{w.ann.id}> and <@{w.bob.id}> playing poker"

        # Consent as today: bob has not shared with ann.
        refused = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": prompt})
        said = await refused.wait_followup(lambda m: "cannot draw" in m.content)
        assert "has not shared" in said.content and not said.attachments
        shared = await w.fake.slash(w.bob, w.general, "share", options={"who": w.ann})
        assert "can now use your adapter" in (await shared.original()).content

        # A team photo: its two faces are redrawn, ann on the left, bob on the right, in one picture.
        photo = {"image": ("team.png", team_photo(), "image/png")}
        asked = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": prompt, "seed": 4},
                                   attachments=photo)
        done = await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=90)
        assert len(done.attachments) == 1 and done.attachments[0].data.startswith(PNG)
        assert f"From the left: <@{w.ann.id}> (not scored), <@{w.bob.id}> (not scored)" in done.content
        with Image.open(io.BytesIO(done.attachments[0].data)) as picture:
            assert picture.size == (1024, 512)  # the photo's own frame
        # No compare, variation or upscale: one pass with both adapters would blend the faces.
        assert not any(c and c.startswith(("doppel:compare:", "doppel:vary-", "doppel:upscale:"))
                       for c, _, _ in done.buttons())

        # The tiny model draws no faces: without a photo, the composition is shown, with why and a way out.
        plain = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": prompt, "seed": 4})
        fallback = await w.fake.wait_for_edit(await plain.original(), lambda m: m.attachments, timeout=90)
        assert "I found no face for 2 people in the composition" in fallback.content
        assert any(c and c.startswith("doppel:single:") for c, _, _ in fallback.buttons())  # the one-pass picture
        other = await w.fake.click(w.bob, fallback, next(c for c, _, _ in fallback.buttons() if c and "single" in c))
        assert "Only" in (await other.original()).content and other.ephemeral  # the requester's to press

        told = await w.fake.slash(w.bob, w.general, "help")
        more = await told.wait_followup(lambda m: "Group pictures" in m.content)
        assert more.ephemeral and "only that person's adapter" in more.content
