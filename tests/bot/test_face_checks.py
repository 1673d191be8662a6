"""Photos checked for the member's face at /dataset add, through the stand-in, with real photographs: the
doubted ones are told, kept only with a button, marked on /dataset list, and left out of /train."""

from __future__ import annotations

import io

from PIL import Image

from bot.members.owner import Owner
from fake_discord.fixtures import fake_discord, running_bot  # noqa: F401  (fixture)
from tests.bot.test_bot import PNG, actors, started, world  # noqa: F401  (fixtures)
from tests.photos import astronaut, cameraman, no_face, variants


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def uploads() -> dict:
    her = variants(astronaut())
    photos = {"her.jpg": astronaut(), "her-mirrored.jpg": her["mirror"], "her-close.jpg": her["crop"],
              "someone.jpg": cameraman(), "coffee.jpg": no_face()}
    names = ["photo"] + [f"photo{k}" for k in range(2, 11)]
    return {names[k]: (name, jpeg(image), "image/jpeg") for k, (name, image) in enumerate(photos.items())}


async def test_doubted_photos_are_told_kept_by_button_marked_and_left_out_of_training(world):
    w = world
    w.settings = w.settings.model_copy(update={"face_checks": True, "min_photos_to_train": 3})
    async with started(w) as bot:
        added = await w.fake.slash(w.ann, w.general, "dataset add", attachments=uploads())
        report = await added.wait_followup(lambda m: "You have" in m.content, timeout=90)
        text = report.content
        assert text.count("✅") == 3 and "✅ her.jpg: added as photo 1" in text, text
        assert "⚠️ someone.jpg: added as photo 4, but the face does not look like the one in your other" in text
        assert "⚠️ coffee.jpg: added as photo 5, but I see no face in it" in text
        assert "You have 5 photos (2 left out of training). Ready for /train." in text
        buttons = {label: custom_id for custom_id, label, _ in report.buttons()}
        assert set(buttons) == {"Keep photo 4", "Keep photo 5"}

        await w.fake.click(w.bob, report, buttons["Keep photo 5"])  # not bob's photo: nothing changes
        kept = await w.fake.click(w.ann, report, buttons["Keep photo 5"])
        assert "Photo 5 stays in your training set" in (await kept.original()).content

        listing = await w.fake.slash(w.ann, w.general, "dataset list")
        sheet = await listing.wait_followup(lambda m: m.attachments, timeout=60)
        assert sheet.attachments[0].data.startswith(PNG)
        assert "Left out of training unless you keep them:\nPhoto 4: the face does not look like" in sheet.content
        assert "Photo 5" not in sheet.content and [label for _, label, _ in sheet.buttons()] == ["Keep photo 4"]

        train = await w.fake.slash(w.ann, w.general, "train", options={"steps": 600})
        queued = await train.wait_followup(lambda m: "Training queued" in m.content, timeout=30)
        assert "Left out (/dataset list has buttons to keep them):\nPhoto 4: the face does not" in queued.content
        runs = bot.members.folder(Owner(w.guild.id, w.ann.id)) / "runs"
        (snapshot,) = runs.iterdir()
        assert sorted(p.name for p in snapshot.glob("*.jpg")) == ["001.jpg", "002.jpg", "003.jpg", "005.jpg"]
        await w.fake.slash(w.ann, w.general, "cancel")
