"""Photos checked for the member's face at /dataset add, through the stand-in, with real photographs: the
doubted ones are told, kept only with a button, marked on /dataset list, and left out of /train."""

from __future__ import annotations

import io
import json

from PIL import Image

from bot.members.owner import Owner
from contract import LOOKS_FILENAME
from faces.verdict import Look
from fake_discord.fixtures import fake_discord, running_bot  # noqa: F401  (fixture)
from tests.bot.test_bot import PNG, actors, started, world  # noqa: F401  (fixtures)
from tests.bot.test_forget import forget
from tests.photos import astronaut, cameraman, no_face, variants

BASE = "tiny-klein-distilled"


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def uploads(photos: dict[str, Image.Image]) -> dict:
    names = ["photo"] + [f"photo{k}" for k in range(2, 11)]
    return {names[k]: (name, jpeg(image), "image/jpeg") for k, (name, image) in enumerate(photos.items())}


async def add(w, photos: dict[str, Image.Image]):
    added = await w.fake.slash(w.ann, w.general, "dataset add", attachments=uploads(photos))
    return await added.wait_followup(lambda m: "You have" in m.content, timeout=90)


async def test_doubted_photos_are_told_kept_by_button_marked_and_left_out_of_training(world):
    w = world
    w.settings = w.settings.model_copy(update={"face_checks": True, "min_photos_to_train": 3})
    her = variants(astronaut())
    async with started(w) as bot:
        first = (await add(w, {"someone.jpg": cameraman(), "coffee.jpg": no_face()})).content
        assert "✅ someone.jpg: added as photo 1" in first  # whose face it is cannot be told yet
        assert "⚠️ coffee.jpg: added as photo 2, but I see no face in it. It stays out of training" in first
        assert "You have 2 photos (1 left out of training). 2 more usable and you can /train." in first

        report = await add(w, {"her.jpg": astronaut(), "her-mirrored.jpg": her["mirror"], "her-close.jpg": her["crop"]})
        text = report.content
        assert text.count("✅") == 3 and "✅ her.jpg: added as photo 3" in text, text
        # With three photos of one face the set knows the member's: the first photo is judged again.
        assert "⚠️ Photo 1 (someone.jpg): now that I know your face from your photos, the face does not look" in text
        assert "You have 5 photos (2 left out of training). Ready for /train." in text
        assert [label for _, label, _ in report.buttons()] == ["Keep photo 1"]

        listing = await w.fake.slash(w.ann, w.general, "dataset list")
        sheet = await listing.wait_followup(lambda m: m.attachments, timeout=60)
        assert sheet.attachments[0].data.startswith(PNG)
        assert "Left out of training unless you keep them:\nPhoto 1: the face does not look like" in sheet.content
        assert "Photo 2: I see no face in it" in sheet.content
        buttons = {label: custom_id for custom_id, label, _ in sheet.buttons()}
        assert set(buttons) == {"Keep photo 1", "Keep photo 2"}
        await w.fake.click(w.bob, sheet, buttons["Keep photo 2"])  # not bob's photo: nothing changes
        kept = await w.fake.click(w.ann, sheet, buttons["Keep photo 2"])
        assert "Photo 2 stays in your training set" in (await kept.original()).content

        train = await w.fake.slash(w.ann, w.general, "train", options={"steps": 600})
        queued = await train.wait_followup(lambda m: "Training queued" in m.content, timeout=30)
        assert "Left out (/dataset list has buttons to keep them):\nPhoto 1: the face does not" in queued.content
        assert "Photo 2" not in queued.content
        runs = bot.members.folder(Owner(w.guild.id, w.ann.id)) / "runs"
        (snapshot,) = runs.iterdir()
        assert sorted(p.name for p in snapshot.glob("*.jpg")) == ["002.jpg", "003.jpg", "004.jpg", "005.jpg"]
        # What the checks saw goes with the photos, so the trainer does not look at them again.
        sent = json.loads((snapshot / LOOKS_FILENAME).read_text())
        told = {name: Look.from_data(data) for name, data in sent.items()}
        assert sorted(told) == ["002.jpg", "003.jpg", "004.jpg", "005.jpg"]
        assert told["002.jpg"].faces == () and all(len(told[n].faces) == 1 for n in ("003.jpg", "004.jpg", "005.jpg"))
        with Image.open(snapshot / "003.jpg") as stored:
            assert told["003.jpg"].size == stored.size
        await w.fake.slash(w.ann, w.general, "cancel")


def test_the_contact_sheet_frames_the_photos_left_out(tmp_path):
    from bot.ui.contact_sheet import AMBER, THUMB, contact_sheet

    path = tmp_path / "her.jpg"
    astronaut().save(path)
    marks = [("you (0.10)", False), ("no face", True)]
    with Image.open(io.BytesIO(contact_sheet([(1, str(path), "me"), (2, str(path), "")], marks))) as sheet:
        cell = sheet.width // 2
        assert sheet.getpixel((cell + 8 - 3, 8 + THUMB // 2)) == AMBER  # the second photo's frame
        assert sheet.getpixel((8 - 3, 8 + THUMB // 2)) != AMBER


def png_text(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as picture:
        return dict(picture.text)  # type: ignore[attr-defined]


async def test_a_member_without_an_adapter_is_drawn_from_their_checked_photos_and_others_only_while_shared(world):
    """On FLUX.2 [klein]: right after /dataset add, /imagine draws the member from their chosen photos (one face,
    theirs; never one the checks leave out or doubt); another member draws them only while they share."""
    from trainer.models.base_model import resolve_base

    w = world
    w.settings = w.settings.model_copy(update={"face_checks": True, "min_photos_to_train": 3,
                                               "base_model": "tiny-klein", "generation_model": BASE})
    resolve_base("tiny-klein"), resolve_base(BASE)  # built before the bot starts: it reads their tokenizer
    her = variants(astronaut())
    async with started(w) as bot:
        await add(w, {"someone.jpg": cameraman(), "coffee.jpg": no_face()})
        await add(w, {"her.jpg": astronaut(), "her-mirrored.jpg": her["mirror"], "her-close.jpg": her["crop"]})
        kept = await w.fake.slash(w.ann, w.general, "dataset list")  # photo 2 (no face) kept: still no reference
        sheet = await kept.wait_followup(lambda m: m.attachments, timeout=60)
        await w.fake.click(w.ann, sheet, next(c for c, label, _ in sheet.buttons() if label == "Keep photo 2"))
        photos = await bot.members.photos(Owner(w.guild.id, w.ann.id))
        hers = {p.sha256 for p in photos[2:]}

        imagine = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": "as a knight", "seed": 7})
        pictures = await w.fake.wait_for_edit(await imagine.original(), lambda m: m.attachments, timeout=60)
        assert "drawn from photos: training an adapter with /train makes it more like them" in pictures.content
        assert set(png_text(pictures.attachments[0].data)["doppel:references"].split(", ")) == hers  # klein takes 4

        # "Put me in this photo": the given photo edited, with her photos (3: the photo edited takes the 4th place).
        edit = await w.fake.slash(w.ann, w.general, "imagine", options={"prompt": "at night", "seed": 7},
                                  attachments={"image": ("street.jpg", jpeg(no_face()), "image/jpeg")})
        edited = await w.fake.wait_for_edit(await edit.original(), lambda m: m.attachments, timeout=60)
        told = png_text(edited.attachments[0].data)
        assert told["doppel:edited"] == "the given photo" and set(told["doppel:references"].split(", ")) == hers

        async def bob_draws_ann(*, drawn: bool):
            """Bob's pictures of ann; or, refused, what he alone is told (his "thinking..." reply goes)."""
            asked = await w.fake.slash(w.bob, w.general, "imagine", options={"prompt": f"<@{w.ann.id}> as a pirate"})
            if drawn:
                return await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=60)
            told = await asked.wait_followup(lambda m: "cannot draw" in m.content, timeout=60)
            assert told.ephemeral and not told.attachments
            return told

        assert "has not shared" in (await bob_draws_ann(drawn=False)).content
        await w.fake.slash(w.ann, w.general, "share", options={"who": w.bob})
        shared = await bob_draws_ann(drawn=True)
        assert set(png_text(shared.attachments[0].data)["doppel:references"].split(", ")) == hers
        await w.fake.slash(w.ann, w.general, "unshare", options={"who": w.bob})
        assert "has not shared" in (await bob_draws_ann(drawn=False)).content

        await w.fake.slash(w.ann, w.general, "share", options={"who": w.bob})
        assert "Deleted" in await forget(w, w.ann, w.general)
        assert "cannot draw" in (await bob_draws_ann(drawn=False)).content
