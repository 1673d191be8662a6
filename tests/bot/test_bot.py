"""doppel end to end: the real bot, through an unmodified discord.py, against the local Discord stand-in,
with a real local Ray, the real trainer and the tiny model."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from PIL import Image

from bot.app import DoppelBot
from bot.jobs.models import JobNotes
from bot.jobs.store import JobStore
from bot.members.owner import Owner
from bot.members.store import EVERYONE
from bot.settings import BotSettings
from contract import GenerateRequest, JobKind, JobState
from fake_discord.fixtures import fake_discord, running_bot  # noqa: F401  (fixture)
from tests.bot.conftest import remove_actors
from tests.photos import face, scene
from trainer.generation.compare import halves
from trainer.models.base_model import resolve_base
from trainer.training import timeline as timeline_layout

PREFIX = "e2e"
PNG = b"\x89PNG\r\n\x1a\n"


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


def pixels(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB").tobytes()


def photo_options(count: int, first: int = 0) -> dict:
    names = ["photo"] + [f"photo{k}" for k in range(2, 11)]
    return {names[k]: (f"me-{k}.jpg", jpeg(scene(first + k)), "image/jpeg") for k in range(count)}


@pytest.fixture(scope="module")
def actors(local_ray):
    """The module's Ray workers, shared by its bots; removed when the module ends."""
    yield PREFIX
    remove_actors(PREFIX)


@pytest.fixture
def world(fake_discord, tmp_path, actors):
    guild = fake_discord.add_guild("Team")
    cdn = urlsplit(fake_discord.base_url).netloc
    settings = BotSettings(
        discord_token="test-token",
        data_dir=tmp_path / "data",
        ray_actor_prefix=actors,
        gpu_sharing="share",
        progress_interval_s=0.2,
        min_photos_to_train=4,
        min_photo_side=64,
        attachment_hosts=[cdn],
        attachment_schemes=["http"],
        train_default_steps=20,
    )
    return SimpleNamespace(
        fake=fake_discord,
        guild=guild,
        ann=guild.add_member("ann"),
        bob=guild.add_member("bob"),
        boss=guild.add_member("boss", manage_guild=True),
        general=guild.add_text_channel("general"),
        settings=settings,
        owner=lambda member: Owner(guild.id, member.id),
    )


def started(w):
    """The bot, connected: its start-up includes Ray workers loading the model, so allow for a busy machine."""
    return running_bot(w.fake, DoppelBot(w.settings), ready_timeout=90)


def rows_of(settings: BotSettings, member_id: int) -> dict[str, int]:
    with sqlite3.connect(settings.database_file) as db:
        return {
            table: db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (member_id,)).fetchone()[0]
            for table, column in (("members", "member_id"), ("photos", "member_id"), ("adapters", "member_id"),
                                  ("jobs", "member_id"), ("shares", "owner_id"), ("shares", "grantee_id"))
        }


async def add_photos(w, member, count=4, first=0):
    inter = await w.fake.slash(member, w.general, "dataset add", options={"caption": "me at home"},
                               attachments=photo_options(count, first))
    return await inter.wait_followup(lambda m: "You have" in m.content, timeout=30)


@pytest.mark.parametrize("base", ["tiny", "tiny-klein"])  # FLUX.1 and FLUX.2 [klein], each the whole path
async def test_photos_train_progress_announce_and_imagine(world, trained, base):
    w = world
    w.settings = w.settings.model_copy(update={"base_model": base})  # what the bot trains and draws on
    resolve_base(base)  # built before the bot starts, as `tiny` is by its fixture: the bot reads its tokenizer
    async with started(w) as bot:
        report = await add_photos(w, w.ann)
        assert report.ephemeral and report.content.count("✅") == 4 and "Ready for /train" in report.content

        listing = await w.fake.slash(w.ann, w.general, "dataset list")
        sheet = await listing.wait_followup(lambda m: m.attachments)
        assert sheet.ephemeral and sheet.attachments[0].data.startswith(PNG)

        fresh = {}
        if base != "tiny":  # the member's adapter is FLUX.1's, from before BASE_MODEL changed: they are told what to do
            await bot.members.set_adapter(w.owner(w.ann), trained.lora_path, None, 30, identity=None)
            old = await w.fake.slash(w.ann, w.general, "train", options={"steps": 20})
            told = await old.wait_followup(lambda m: "fresh:True" in m.content)
            assert "trained on `tiny`" in told.content and f"now trains on `{base}`" in told.content
            fresh = {"fresh": True}
        train = await w.fake.slash(w.ann, w.general, "train", options={"steps": 20} | fresh)
        await train.wait_followup(lambda m: "Training queued" in m.content)
        progress = await w.general.wait_for_message(lambda m: "Training the adapter" in m.content)
        await w.fake.wait_for_edit(progress, lambda m: "step" in m.content and "of 20" in m.content, timeout=60)
        await w.fake.wait_for_edit(progress, lambda m: any(a.filename == "sample.png" for a in m.attachments), 60)
        announcement = await w.general.wait_for_message(lambda m: "adapter is ready" in m.content, timeout=120)
        timeline = announcement.attachments[0]
        assert timeline.filename == "timeline.png" and timeline.data.startswith(PNG)
        with Image.open(io.BytesIO(timeline.data)) as picture:
            # steps 0, 5, 10, 15, 20 of 20, one column each, the 64 px samples enlarged to cells of 256
            prompts = timeline_layout.Geometry.for_cells(5, 256).prompts_width
            assert picture.width == prompts + 5 * (256 + timeline_layout.GAP)
        assert "done" in progress.content

        imagine = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": "as a knight", "seed": 7})
        assert await imagine.acknowledged() == 5  # deferred at once
        pictures = await w.fake.wait_for_edit(await imagine.original(), lambda m: m.attachments, timeout=60)
        assert pictures.attachments[0].data.startswith(PNG)
        assert "seed 7" in pictures.content and "as a knight" in pictures.content
        assert any(custom_id and custom_id.startswith("doppel:reroll:") for custom_id, _, _ in pictures.buttons())
        # Upscale, by each family's image-to-image path (FLUX.2 [klein]'s is its inpainting pipeline).
        upscale = next(c for c, _, _ in pictures.buttons() if c and c.startswith("doppel:upscale:"))
        pressed = await w.fake.click(w.ann, pictures, upscale)
        upscaled = await w.fake.wait_for_edit(await pressed.original(), lambda m: m.attachments, timeout=60)
        with Image.open(io.BytesIO(upscaled.attachments[0].data)) as picture:
            assert picture.size == (128, 128) and "seed 7 · upscaled" in upscaled.content

        weak = await w.fake.slash(
            w.ann, w.general, "imagine", options={"prompt": "as a knight", "seed": 7, "strength": 0.0}
        )
        unadapted = await w.fake.wait_for_edit(await weak.original(), lambda m: m.attachments, timeout=60)
        # Strength 0 is the base model's picture: other pixels (not only other PNG metadata) than strength 1.
        assert pixels(unadapted.attachments[0].data) != pixels(pictures.attachments[0].data)

        # ... and the very picture the base model makes: /compare's left half, same prompt and seed.
        compared = await w.fake.slash(w.ann, w.general, "compare", options={"prompt": "as a knight", "seed": 7})
        shown = await w.fake.wait_for_edit(await compared.original(), lambda m: m.attachments, timeout=60)
        with Image.open(io.BytesIO(shown.attachments[0].data)) as sheet:
            left, right = (half.tobytes() for half in halves(sheet.convert("RGB"), (64, 64)))
        assert left == pixels(unadapted.attachments[0].data) and right == pixels(pictures.attachments[0].data)

        # An earlier step's adapter, chosen from the announcement, is what /imagine draws with from then on.
        choose = next(c for c, label, _ in announcement.buttons() if label == "Use step 5")
        await w.fake.click(w.ann, announcement, choose)
        await w.fake.wait_for_edit(announcement, lambda m: "chose **step 5**" in m.content, timeout=30)
        assert (await bot.members.adapter(w.owner(w.ann))).steps == 5


async def test_hostile_uploads_are_refused_one_by_one_and_nothing_is_kept(world):
    w = world
    good = jpeg(scene(0))
    animation = io.BytesIO()
    frames = [face(96, 96, 0), face(96, 96, 90)]
    frames[0].save(animation, format="GIF", save_all=True, append_images=frames[1:])
    uploads = {
        "photo": ("notes.jpg", b"my shopping list: eggs, milk", "image/jpeg"),
        "photo2": ("empty.png", b"", "image/png"),
        "photo3": ("cut.jpg", jpeg(face(256, 256, 0))[:900], "image/jpeg"),
        "photo4": ("party.gif", animation.getvalue(), "image/gif"),
        "photo5": ("tiny.jpg", jpeg(face(40, 40, 0)), "image/jpeg"),
        "photo6": ("report.png", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "image/png"),
        "photo7": ("me.jpg", good, "image/jpeg"),
        "photo8": ("me-again.jpg", good, "image/jpeg"),
    }
    async with started(w) as bot:
        # A burst of commands queues on this many kept-open connections to Discord instead of opening one each.
        assert bot.http.connector.limit_per_host == w.settings.discord_connections == 16
        inter = await w.fake.slash(w.ann, w.general, "dataset add", attachments=uploads)
        report = (await inter.wait_followup(lambda m: "You have" in m.content, timeout=30)).content
        lines = {line.split(":", 1)[0].lstrip("✅❌ "): line for line in report.splitlines()}
        assert lines["me.jpg"].startswith("✅")
        for name in ("notes.jpg", "empty.png", "cut.jpg", "party.gif", "tiny.jpg", "report.png", "me-again.jpg"):
            assert lines[name].startswith("❌"), lines[name]
        assert "empty" in lines["empty.png"] and "PDF" in lines["report.png"]
        assert "animation" in lines["party.gif"] or "GIF" in lines["party.gif"]
        assert "same picture as photo 1" in lines["me-again.jpg"]
        stored = list((bot.members.folder(w.owner(w.ann)) / "photos").rglob("*.jpg"))
        assert len(stored) == 1 and len(await bot.members.photos(w.owner(w.ann))) == 1
        with Image.open(stored[0]) as kept:
            assert not kept.info.get("exif") and kept.format == "JPEG"


async def test_a_member_cannot_draw_someone_who_has_not_shared(world, trained):
    w = world
    async with started(w) as bot:
        ann = w.owner(w.ann)
        await bot.token_for(ann)
        await bot.members.set_adapter(ann, trained.lora_path, None, 30, identity=None)

        refused = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": f"<@{w.ann.id}> as a pirate"})
        message = await refused.wait_followup(lambda m: "cannot draw" in m.content)
        assert "has not shared" in message.content and not message.attachments
        assert message.ephemeral  # told to bob only: the public "thinking..." reply went

        # /train's range as Discord's client shows it is the one TRAIN_MAX_STEPS says, and its default is said
        train = next(c for c in w.fake.commands() + w.fake.commands(w.guild) if c["name"] == "train")
        steps = next(o for o in train["options"] if o["name"] == "steps")
        assert (steps["min_value"], steps["max_value"]) == (10, bot.settings.train_max_steps)
        assert f"(default {bot.settings.train_default_steps})" in steps["description"]

        early = await w.fake.slash(w.bob, w.general, "share", options={"who": w.ann})  # bob has no adapter
        assert "You have no adapter yet: once /train has made one" in (await early.original()).content

        share = await w.fake.slash(w.ann, w.general, "share", options={"who": w.bob})
        assert "can now use your adapter" in (await share.original()).content

        allowed = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": f"<@{w.ann.id}> as a pirate"})
        pictures = await w.fake.wait_for_edit(await allowed.original(), lambda m: m.attachments, timeout=60)
        assert pictures.attachments[0].data.startswith(PNG)

        # Only the requester may re-roll.
        reroll = next(c for c, _, _ in pictures.buttons() if c and c.startswith("doppel:reroll:"))
        other = await w.fake.click(w.ann, pictures, reroll)
        assert "Only" in (await other.original()).content and other.ephemeral
        mine = await w.fake.click(w.bob, pictures, reroll)
        again = await w.fake.wait_for_edit(await mine.original(), lambda m: m.attachments, timeout=60)
        assert again.attachments[0].data.startswith(PNG)


async def test_forget_leaves_no_file_or_row_of_the_member(world, trained):
    w = world
    async with started(w) as bot:
        await add_photos(w, w.ann, count=2)
        await add_photos(w, w.bob, count=1, first=50)
        ann = w.owner(w.ann)
        await bot.members.set_adapter(ann, trained.lora_path, None, 30, identity=None)
        await bot.members.share(ann, 0)
        picture = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": "at the beach", "seed": 1})
        await w.fake.wait_for_edit(await picture.original(), lambda m: m.attachments, timeout=60)
        assert rows_of(w.settings, w.ann.id)["jobs"] == 1

        ask = await w.fake.slash(w.ann, w.general, "forget")
        question = await ask.original()
        assert question.ephemeral and "Sure?" in question.content
        confirm = next(c for c, label, _ in question.buttons() if label == "Delete everything")
        done = await (await w.fake.click(w.ann, question, confirm)).wait_followup(lambda m: "Deleted" in m.content)
        assert "2 photos" in done.content and "1 adapter" in done.content and "1 jobs" in done.content

        assert rows_of(w.settings, w.ann.id) == dict.fromkeys(rows_of(w.settings, w.ann.id), 0)
        assert not bot.members.folder(ann).exists()
        assert not any((w.settings.data_dir / "jobs").iterdir())
        assert rows_of(w.settings, w.bob.id)["photos"] == 1  # bob is untouched


async def test_a_restarted_bot_keeps_editing_the_same_progress_message(world):
    w = world
    async with started(w):
        await add_photos(w, w.ann)
        await w.fake.slash(w.ann, w.general, "train", options={"steps": 600})
        progress = await w.general.wait_for_message(lambda m: "Training the adapter" in m.content)
        await w.fake.wait_for_edit(progress, lambda m: "step" in m.content, timeout=60)
    edits_before = progress.edits

    async with started(w):
        await w.general.wait_for_message(lambda m: "adapter is ready" in m.content, timeout=180)
        await w.fake.wait_for_edit(progress, lambda m: "done" in m.content, timeout=30)
    assert progress.edits > edits_before
    assert len([m for m in w.general.messages if "Training the adapter" in m.content]) == 1


async def test_dm_photos_and_the_admin_and_help_commands_and_the_limits(world):
    w = world
    trainers = w.guild.add_role("Trainers")
    # DRAW_ROLES naming @everyone: each picture's start asks Discord for its requester's roles, and lets them by.
    w.settings = w.settings.model_copy(update={"pictures_per_hour": 1, "train_roles": ["Trainers"],
                                               "draw_roles": ["@everyone"]})
    async with started(w):
        unknown = await w.fake.dm(w.ann, "me in the garden", [("garden.jpg", jpeg(scene(7)), "image/jpeg")])
        dm = unknown.channel
        assert "cannot tell" in (await dm.wait_for_message(lambda m: m.author_id != w.ann.id)).content

        token = await w.fake.slash(w.ann, w.general, "token")
        assert "trigger token" in (await token.original()).content
        await w.fake.dm(w.ann, "me in the garden", [("garden.jpg", jpeg(scene(7)), "image/jpeg")])
        reply = await dm.wait_for_message(lambda m: "added as photo 1" in m.content)
        assert "garden.jpg" in reply.content

        # A server may let anyone see /admin (an override); the bot still checks Manage Server itself.
        refused = await w.fake.slash(w.ann, w.general, "admin limits", override_permissions=True)
        assert "Manage Server" in (await refused.original()).content
        limits = await w.fake.slash(w.boss, w.general, "admin limits")
        assert "Photos per member" in (await limits.original()).content
        queue = await w.fake.slash(w.boss, w.general, "admin queue")
        assert (await queue.original()).ephemeral

        help_ = await w.fake.slash(w.bob, w.general, "help")
        text = (await help_.original()).content
        assert "names no one gets your token in front" in text and "blend" in text

        # TRAIN_ROLES: bob has none of them and is refused; cat has one, and gets as far as her photos.
        refused = await w.fake.slash(w.bob, w.general, "train")
        assert (await refused.wait_followup()).content == "Only members with the role `Trainers` may train here."
        cat = w.guild.add_member("cat", roles=(trainers,))
        allowed = await w.fake.slash(cat, w.general, "train")
        assert "training needs at least 4" in (await allowed.wait_followup()).content

        # One picture an hour: the second request is refused, saying when to ask again, and /limits shows it.
        first = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": "a cat"})
        await w.fake.wait_for_edit(await first.original(), lambda m: bool(m.attachments), timeout=90)
        second = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": "a dog"})
        over = await w.fake.wait_for_edit(await second.original(), lambda m: "may ask" in m.content)
        assert re.fullmatch(r"You have asked for 1 of your 1 pictures in the last hour; you may ask for 1 more "
                            r"<t:\d+:R> \(/limits shows your use\)\.", over.content), over.content
        limits = (await (await w.fake.slash(w.bob, w.general, "limits")).original()).content
        assert re.search(r"^Pictures in the last hour: 1 of 1; more <t:\d+:R>$", limits, re.MULTILINE), limits
        assert "Only members with the role `Trainers` may train here." in limits

        # An admin's block: bob may not draw until unblocked, and /limits tells him.
        blocked = await w.fake.slash(w.boss, w.general, "admin block", options={"member": w.bob})
        assert (await blocked.original()).content.startswith(f"Blocked <@{w.bob.id}>")
        third = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": "a bird"})
        said = await w.fake.wait_for_edit(await third.original(), lambda m: "blocked" in m.content)
        assert said.content == "An admin of this server has blocked you from training and pictures here."
        limits = (await (await w.fake.slash(w.bob, w.general, "limits")).original()).content
        assert limits.count("blocked you") == 1
        unblocked = await w.fake.slash(w.boss, w.general, "admin unblock", options={"member": w.bob})
        assert (await unblocked.original()).content == f"Unblocked <@{w.bob.id}>."
        limits = (await (await w.fake.slash(w.bob, w.general, "limits")).original()).content
        assert "blocked" not in limits


async def test_status_and_cancel_and_editing_the_dataset(world):
    w = world
    trainers = w.guild.add_role("Trainers")
    for member in (w.ann, w.bob):
        w.guild.set_member_roles(member, (trainers,))
    w.settings = w.settings.model_copy(update={"train_roles": ["Trainers"]})
    async with started(w) as bot:
        await add_photos(w, w.ann, count=4)
        caption = await w.fake.slash(
            w.ann, w.general, "dataset caption", options={"number": 2, "text": "[trigger] hiking"}
        )
        assert "Photo 2 now reads: [trigger] hiking" in (await caption.original()).content
        reversed_ = await w.fake.slash(
            w.ann, w.general, "dataset caption", options={"number": 2, "text": "me at home\u202eemoh"}
        )
        assert (await reversed_.original()).content.startswith(
            "The caption was not changed: the caption holds an invisible character (U+202E, right-to-left override)"
        )
        marked = await w.fake.slash(
            w.ann, w.general, "dataset caption", options={"number": 3, "text": "**me**\n@everyone [x](https://e.example)"}
        )
        assert "Photo 3 now reads: \\*\\*me\\*\\* @\u200beveryone [x\\](https://e.example)" in (
            await marked.original()
        ).content
        refused = await w.fake.slash(w.ann, w.general, "dataset add", options={"caption": "me\x07"},
                                     attachments=photo_options(1, 10))
        assert "No photo was added: the caption holds an invisible character (U+0007" in (
            await refused.wait_followup()
        ).content
        removed = await w.fake.slash(w.ann, w.general, "dataset remove", options={"number": 1})
        assert "You have 3 left" in (await removed.original()).content
        missing = await w.fake.slash(w.ann, w.general, "dataset remove", options={"number": 9})
        assert "no photo 9" in (await missing.original()).content
        assert [p.caption for p in await bot.members.photos(w.owner(w.ann))][:2] == [
            "[trigger] hiking", "**me** @everyone [x](https://e.example)"  # kept as written, on one line
        ]

        too_few = await w.fake.slash(w.ann, w.general, "train")
        assert "training needs at least 4" in (await too_few.wait_followup()).content
        await add_photos(w, w.ann, count=1, first=20)
        await w.fake.slash(w.ann, w.general, "train", options={"steps": 3000})
        progress = await w.general.wait_for_message(lambda m: "Training the adapter" in m.content)
        await w.fake.wait_for_edit(progress, lambda m: "step" in m.content, timeout=60)

        status = await w.fake.slash(w.ann, w.general, "status")
        assert "Training: step" in (await status.original()).content
        again = await w.fake.slash(w.ann, w.general, "train")
        assert "already have a training" in (await again.wait_followup()).content

        # /queue: bob's training waits behind ann's, which has stepped: both see a place and an estimate.
        await add_photos(w, w.bob, count=4)
        await (await w.fake.slash(w.bob, w.general, "train")).wait_followup()
        bobs = (await (await w.fake.slash(w.bob, w.general, "queue")).original()).content
        assert "Your training: number 1 of 1 waiting, starts in about " in bobs, bobs
        assert "1 training running and 0 waiting" in bobs and "ann" not in bobs
        anns = (await (await w.fake.slash(w.ann, w.general, "queue")).original()).content
        assert "Your training: running, step " in anns and " of 3000, ends in about " in anns, anns
        assert "0 trainings running and 1 waiting" in anns
        # While it waits, an admin takes bob's role away: his training is refused as it would start.
        w.guild.set_member_roles(w.bob, ())
        bobs_progress = next(m for m in w.general.messages if "Training the adapter" in m.content and m is not progress)
        cancel = await w.fake.slash(w.ann, w.general, "cancel")
        assert "Stopping your training" in (await cancel.original()).content
        await w.fake.wait_for_edit(progress, lambda m: "Cancelled" in m.content, timeout=30)
        refused = await w.fake.wait_for_edit(bobs_progress, lambda m: "failed" in m.content, timeout=30)
        assert refused.content.endswith("❌ Training failed: only members with the role `Trainers` may train here")

        cleared = await w.fake.slash(w.ann, w.general, "dataset clear")
        assert "Removed all 4" in (await cleared.original()).content
        assert not list((bot.members.folder(w.owner(w.ann)) / "photos").rglob("*.jpg"))


async def test_compare_shows_the_base_model_beside_the_adapter(world, trained):
    w = world
    async with started(w) as bot:
        ann = w.owner(w.ann)
        await bot.token_for(ann)
        await bot.members.set_adapter(ann, trained.lora_path, None, 30, identity=None)

        def halves(png: bytes):
            with Image.open(io.BytesIO(png)) as picture:
                rgb = picture.convert("RGB")
                width, height = rgb.size
                left = rgb.crop((0, 20, width // 2, height)).tobytes()
                right = rgb.crop((width // 2, 20, width, height)).tobytes()
                return left, right

        command = await w.fake.slash(w.ann, w.general, "compare", options={"prompt": "as a pirate", "seed": 3})
        shown = await w.fake.wait_for_edit(await command.original(), lambda m: m.attachments, timeout=60)
        assert "left: the base model" in shown.content and "seed 3" in shown.content
        base, tuned = halves(shown.attachments[0].data)
        assert base != tuned

        imagine = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": "as a pirate", "seed": 3})
        pictures = await w.fake.wait_for_edit(await imagine.original(), lambda m: m.attachments, timeout=60)
        button = next(c for c, _, _ in pictures.buttons() if c and c.startswith("doppel:compare:"))
        clicked = await w.fake.click(w.ann, pictures, button)
        again = await w.fake.wait_for_edit(await clicked.original(), lambda m: m.attachments, timeout=60)
        assert halves(again.attachments[0].data) == (base, tuned)  # same prompt, same seed, same two pictures

        plain = await w.fake.slash(w.bob, w.general, "compare", options={"prompt": "a cat"})
        refused = await w.fake.wait_for_edit(await plain.original(), lambda m: "adapter" in m.content)
        assert "no adapter to compare" in refused.content


async def test_choosing_an_earlier_step_changes_the_adapter_and_train_more_builds_on_it(world):
    w = world
    async with started(w) as bot:
        ann = w.owner(w.ann)
        await add_photos(w, w.ann)
        await w.fake.slash(w.ann, w.general, "train", options={"steps": 12})
        announcement = await w.general.wait_for_message(lambda m: "adapter is ready" in m.content, timeout=120)
        buttons = {label: custom_id for custom_id, label, _ in announcement.buttons()}
        # The timeline's columns after the first, as steps to choose: 3, 6, 9 of 12, and the last.
        assert list(buttons) == ["Use step 3", "Use step 6", "Use step 9", "Keep step 12 (last)", "Train more"]

        async def knight() -> bytes:
            asked = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": "as a knight", "seed": 7})
            shown = await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=60)
            return pixels(shown.attachments[0].data)

        at_last_step = await knight()
        refused = await w.fake.click(w.bob, announcement, buttons["Use step 3"])
        assert "Only" in (await refused.original()).content and refused.ephemeral

        await w.fake.click(w.ann, announcement, buttons["Use step 3"])
        await w.fake.wait_for_edit(announcement, lambda m: "chose **step 3**" in m.content, timeout=30)
        assert [label for _, label, _ in announcement.buttons()] == ["Train more"]
        assert (await bot.members.adapter(ann)).steps == 3
        assert await knight() != at_last_step  # same prompt, same seed: another adapter draws it
        first_run = w.settings.jobs_dir / f"{(await bot.members.adapter(ann)).job_id:08d}"
        assert sorted(p.name for p in (first_run / "checkpoints").iterdir()) == ["step-000003.ckpt"]

        more = await w.fake.click(w.ann, announcement, buttons["Train more"])
        assert await more.acknowledged() == 9  # a modal: how many more steps
        not_a_number = await w.fake.submit_modal(w.ann, more, {"doppel:more:steps": "lots"})
        assert "whole number from 10" in (await not_a_number.original()).content
        more = await w.fake.click(w.ann, announcement, buttons["Train more"])  # a submitted modal is closed
        assert await more.acknowledged() == 9
        submitted = await w.fake.submit_modal(w.ann, more, {"doppel:more:steps": "10"})
        queued = await submitted.wait_followup(lambda m: "Training queued" in m.content)
        assert "building on your adapter's 3 steps" in queued.content
        second = await w.general.wait_for_message(
            lambda m: "adapter is ready" in m.content and m.id != announcement.id, timeout=120
        )
        assert "from where it started" in second.content
        assert [label for _, label, _ in second.buttons()][-2:] == ["Keep step 13 (last)", "Train more"]
        assert (await bot.members.adapter(ann)).steps == 13
        assert not list((first_run / "checkpoints").iterdir())  # the new adapter replaced the old run's for good


async def test_pictures_asked_for_before_a_restart_are_posted_after_it(world):
    w = world
    # What a bot that stopped mid-request leaves behind: the request, queued in the record, its interaction gone.
    store = await JobStore.open(w.settings.database_file)
    request = GenerateRequest(base="tiny", prompt="a lighthouse", seed=5)
    notes = JobNotes(plain=True, channel_id=w.general.id)
    await store.submit(JobKind.GENERATE, w.owner(w.ann), request, notes, max_active=3)
    # and one written by an older doppel, which cannot be read: it fails with why, and holds up nothing.
    old = await store.submit(JobKind.GENERATE, w.owner(w.bob), request, JobNotes(), max_active=3)
    await store.db.execute("UPDATE jobs SET params = ? WHERE id = ?", (json.dumps({"prompt": "old"}), old.id))
    await store.close()

    async with started(w):
        posted = await w.general.wait_for_message(lambda m: m.attachments, timeout=60)
    assert posted.content.startswith(f"<@{w.ann.id}>")
    assert "a lighthouse" in posted.content and "seed 5" in posted.content
    assert posted.attachments[0].data.startswith(PNG)


# ---- consent at every door ------------------------------------------------------------------


@contextlib.contextmanager
def generator_away(bot):
    """For the block, the generator is out of dispatch (as while Ray restarts it): pictures asked for stay queued."""
    for replica in bot.runner.generators:
        replica.ready = False
    try:
        yield
    finally:
        for replica in bot.runner.generators:
            replica.ready = True


async def imagine_queued(w, member, prompt: str):
    """/imagine, once its reply says it waits in line: the reply."""
    asked = await w.fake.slash(member, w.general, "imagine", options={"prompt": prompt})
    return await w.fake.wait_for_edit(await asked.original(), lambda m: "Queued" in m.content)


async def ann_with_adapter(w, bot, adapter, *grantees: int) -> Owner:
    ann = w.owner(w.ann)
    await bot.token_for(ann)
    await bot.members.set_adapter(ann, adapter, None, 30, identity=None)
    for grantee in grantees:
        await bot.members.share(ann, grantee)
    return ann


def no_picture(message) -> bool:
    return "No picture this time" in message.content


async def test_unsharing_stops_the_waiting_pictures_and_old_buttons_of_those_who_lost_access(world, trained):
    w = world
    async with started(w) as bot:
        await ann_with_adapter(w, bot, trained.lora_path, w.bob.id, EVERYONE)
        asked = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": f"<@{w.ann.id}> as a pirate"})
        pictures = await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=60)
        buttons = {custom_id.split(":")[1]: custom_id for custom_id, _, _ in pictures.buttons() if custom_id}

        # While ann shares: variations and the upscale of bob's picture are drawn from it, with ann's adapter.
        drawn = {}
        for key in ("vary-subtle", "vary-strong", "upscale"):
            pressed = await w.fake.click(w.bob, pictures, buttons[key])
            drawn[key] = await w.fake.wait_for_edit(await pressed.original(), lambda m: m.attachments, timeout=60)
        assert "a variation (strength 0.4)" in drawn["vary-subtle"].content
        assert "a variation (strength 0.75)" in drawn["vary-strong"].content
        with Image.open(io.BytesIO(drawn["upscale"].attachments[0].data)) as upscaled:
            assert upscaled.size == (128, 128) and "upscaled" in drawn["upscale"].content  # tiny draws 64 a side
        assert not any(c and c.startswith("doppel:upscale:") for c, _, _ in drawn["upscale"].buttons())
        assert pixels(drawn["vary-subtle"].attachments[0].data) != pixels(pictures.attachments[0].data)
        # A variation's re-roll is drawn from the same picture again; its comparison is not offered (one pass only).
        varied = {c.split(":")[1]: c for c, _, _ in drawn["vary-subtle"].buttons() if c}
        assert "compare" not in varied
        pressed = await w.fake.click(w.bob, drawn["vary-subtle"], varied["reroll"])
        again = await w.fake.wait_for_edit(await pressed.original(), lambda m: m.attachments, timeout=60)
        assert "a variation (strength 0.4)" in again.content

        with generator_away(bot):
            bobs = await imagine_queued(w, w.bob, f"<@{w.ann.id}> on a horse")
            boss = await imagine_queued(w, w.boss, f"<@{w.ann.id}> on a horse")
            unshared = await w.fake.slash(w.ann, w.general, "unshare", options={"who": w.guild.everyone})
            assert "1 picture request" in (await unshared.original()).content
            # Everyone but bob, with whom ann still shares by name, lost access: boss's picture stops, with why.
            stopped = await w.fake.wait_for_edit(boss, no_picture)
            assert f"<@{w.ann.id}> stopped sharing their adapter with you" in stopped.content
            assert not stopped.attachments and "Queued" in bobs.content
        await w.fake.wait_for_edit(bobs, lambda m: m.attachments, timeout=60)

        with generator_away(bot):
            bobs = await imagine_queued(w, w.bob, f"<@{w.ann.id}> on a horse")
            await w.fake.slash(w.ann, w.general, "unshare", options={"who": w.bob})
            stopped = await w.fake.wait_for_edit(bobs, no_picture)
            assert f"<@{w.ann.id}> stopped sharing" in stopped.content and not stopped.attachments
        failed = await bot.jobs.of_owner(w.owner(w.boss), JobState.FAILED)
        assert len(failed) == 1 and failed[0].result is None  # failed: not counted as boss's use

        for key in ("reroll", "compare", "vary-subtle", "vary-strong", "upscale"):  # under bob's pictures from before
            pressed = await w.fake.click(w.bob, pictures, buttons[key])
            refused = await pressed.wait_followup(lambda m: "cannot draw" in m.content)
            assert "has not shared their adapter with you" in refused.content and not refused.attachments
            assert refused.ephemeral


async def test_consent_is_checked_as_a_picture_starts_before_it_is_kept_and_before_it_is_shown(world, trained):
    w = world
    async with started(w) as bot:
        ann = await ann_with_adapter(w, bot, trained.lora_path, w.bob.id)
        prompt = f"<@{w.ann.id}> as an astronaut"

        # Taken back by another door than /unshare (straight in the record) while the picture waits:
        # the runner refuses it as it starts.
        with generator_away(bot):
            waiting = await imagine_queued(w, w.bob, prompt)
            await bot.members.unshare(ann, w.bob.id)
        refused = await w.fake.wait_for_edit(waiting, no_picture, timeout=30)
        assert f"<@{w.ann.id}> has not shared their adapter with you" in refused.content

        class TakenBackAfter:
            """The runner's consent check, with the share taken back just after its `calls`th answer."""

            def __init__(self, calls: int):
                self.calls, self.answered = calls, []

            async def refusal(self, job):
                refusal = await bot.consent.refusal(job)
                self.answered.append(job.id)
                if len(self.answered) == self.calls:
                    await bot.members.unshare(ann, w.bob.id)
                return refusal

        # ... while the picture is being drawn: it is made, and not kept.
        await bot.members.share(ann, w.bob.id)
        bot.runner.pictures.consent = TakenBackAfter(1)
        asked = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": prompt})
        refused = await w.fake.wait_for_edit(await asked.original(), no_picture, timeout=60)
        assert "has not shared" in refused.content and not refused.attachments
        failed = await bot.jobs.of_owner(w.owner(w.bob), JobState.FAILED)
        assert len(failed) == 2 and failed[-1].result is None  # its pictures were not kept

        # ... after the runner kept the pictures: they are not shown.
        await bot.members.share(ann, w.bob.id)
        bot.runner.pictures.consent = TakenBackAfter(2)
        asked = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": prompt})
        refused = await w.fake.wait_for_edit(await asked.original(), no_picture, timeout=60)
        assert "has not shared" in refused.content and not refused.attachments
        assert len(await bot.jobs.of_owner(w.owner(w.bob), JobState.SUCCEEDED)) == 1  # made, never shown


async def test_an_old_button_never_reaches_another_adapter_of_the_member_drawn(world, trained):
    w = world
    steps = sorted((trained.lora_path.parent / "checkpoints").glob("step-*.safetensors"))
    async with started(w) as bot:
        ann = await ann_with_adapter(w, bot, trained.lora_path, EVERYONE)

        async def bobs_pictures():
            asked = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": f"<@{w.ann.id}> as a chef"})
            shown = await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=60)
            return shown, next(c for c, _, _ in shown.buttons() if c and c.startswith("doppel:reroll:"))

        # ann chooses another adapter, and still shares it: bob's old re-roll does not draw it.
        pictures, reroll = await bobs_pictures()
        await bot.members.set_adapter(ann, steps[0], None, 10, identity=None)
        pressed = await w.fake.click(w.bob, pictures, reroll)
        refused = await pressed.wait_followup(lambda m: "cannot draw" in m.content)  # to bob alone
        assert refused.ephemeral and f"<@{w.ann.id}>'s adapter has changed" in refused.content
        assert not refused.attachments

        # ann asks to be forgotten while bob's picture of her waits: it stops, and bob is told why.
        pictures, reroll = await bobs_pictures()
        with generator_away(bot):
            waiting = await imagine_queued(w, w.bob, f"<@{w.ann.id}> on a boat")
            question = await (await w.fake.slash(w.ann, w.general, "forget")).original()
            confirm = next(c for c, label, _ in question.buttons() if label == "Delete everything")
            await (await w.fake.click(w.ann, question, confirm)).wait_followup(lambda m: "Deleted" in m.content)
            stopped = await w.fake.wait_for_edit(waiting, lambda m: "No picture" in m.content)
            assert f"<@{w.ann.id}> asked to be forgotten" in stopped.content and not stopped.attachments

        # She comes back with a new adapter and shares it with everyone: bob's old button does not draw it
        # (the pictures of her are deleted with her; where that message could not be deleted, a press is refused).
        await ann_with_adapter(w, bot, steps[1], EVERYONE)
        if not pictures.deleted:
            pressed = await w.fake.click(w.bob, pictures, reroll)
            if await pressed.acknowledged() == 4:  # answered at once: the request is gone
                answer = await pressed.original()
                assert "no longer exists" in answer.content
            else:  # deferred, then refused to bob alone
                answer = await pressed.wait_followup(lambda m: "cannot draw" in m.content)
            assert not answer.attachments
        assert not await bot.jobs.of_owner(w.owner(w.bob), JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED)


async def test_adapter_upload_download_to_the_owner_only_and_refusals_in_words(world, trained):
    """/adapter upload takes a member's own LoRA (here a doppel one, as a file from elsewhere) and refuses a pickle,
    another family's and wrong shapes; /adapter download sends it to its owner alone, in both formats."""
    import pickle
    from pathlib import Path

    from contract.lora_formats import export
    from contract.safetensors_raw import read
    from tests.test_lora_formats import flux1_dev_adapter, klein_layer

    w = world
    lora = trained.lora_path.read_bytes()
    async with started(w) as bot:
        async def upload(member, name, data):
            ask = await w.fake.slash(member, w.general, "adapter upload",
                                     attachments={"file": (name, data, "application/octet-stream")})
            immediate = await ask.acknowledged() == 4  # a refusal before the file is fetched; else deferred
            return (await ask.original() if immediate else await ask.wait_followup(timeout=30)).content

        refusals = {
            ("me.ckpt", pickle.dumps({"x": 1})): "pickles",
            ("me.safetensors", pickle.dumps({"x": 1})): "pickle",
            ("klein.safetensors", klein_layer()): "made for FLUX.2 [klein]; I draw with FLUX.1",
            ("dev.safetensors", flux1_dev_adapter()[0]): "maps 3072 to 3072 features",
        }
        for (name, data), reason in refusals.items():
            said = await upload(w.ann, name, data)
            assert f"I did not take `{name}`" in said and reason in said, said
        assert await bot.members.adapter(w.owner(w.ann)) is None  # nothing changed

        said = await upload(w.ann, "mine.safetensors", export(lora, "comfyui"))
        assert "is now your adapter (kohya keys" in said, said
        adapter = await bot.members.adapter(w.owner(w.ann))
        token = await bot.members.token(w.owner(w.ann))
        tensors, metadata = read(Path(adapter.path).read_bytes())
        assert all(k.startswith("lora_unet_") for k in tensors)
        assert (metadata["doppel.token"], metadata["doppel.source"], metadata["doppel.base_model"]) == (
            token, "upload", "tiny")

        said = await upload(w.ann, "mine.safetensors", lora)  # diffusers' keys: both formats go back
        assert "diffusers keys" in said, said
        drawn = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": "as a pirate"})
        pictures = await w.fake.wait_for_edit(await drawn.original(), lambda m: m.attachments, timeout=60)
        assert pictures.attachments[0].data.startswith(PNG)  # drawn with the uploaded adapter, theirs now
        ask = await w.fake.slash(w.ann, w.general, "adapter download")
        sent = await ask.wait_followup(lambda m: m.attachments, timeout=30)
        assert sent.ephemeral and f"trigger token `{token}`" in sent.content and "`tiny`" in sent.content
        files = {a.filename: a.data for a in sent.attachments}
        assert set(files) == {f"doppel-{token}-comfyui.safetensors", f"doppel-{token}-diffusers.safetensors"}
        comfy_tensors, comfy_meta = read(files[f"doppel-{token}-comfyui.safetensors"])
        assert all(k.startswith("lora_unet_") for k in comfy_tensors)
        assert (comfy_meta["modelspec.trigger_phrase"], comfy_meta["doppel.base_model"]) == (token, "tiny")

        w.guild.upload_limit = len(files[f"doppel-{token}-diffusers.safetensors"]) + 1000  # the ComfyUI file is bigger
        ask = await w.fake.slash(w.ann, w.general, "adapter download")
        sent = await ask.wait_followup(lambda m: m.attachments, timeout=30)
        assert [a.filename for a in sent.attachments] == [f"doppel-{token}-diffusers.safetensors"]
        assert "more than the" in sent.content and "cannot send it here" in sent.content, sent.content

        ask = await w.fake.slash(w.bob, w.general, "adapter download", options={"member": w.ann})
        refused = await ask.original()
        assert refused.ephemeral and "Only ann can download their adapter" in refused.content
        assert not refused.attachments
        ask = await w.fake.slash(w.bob, w.general, "adapter download")
        assert "You have no adapter yet" in (await ask.original()).content
