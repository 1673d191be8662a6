"""A newcomer's first hour (issue 15): phone photo formats, quiet start-up, the docs' run lines."""

import io
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.intake import IntakeLimits, Rejected, prepare
from contract.library_warnings import KNOWN, quiet_library_warnings
from tests.conftest import TOKEN
from tests.photos import scene
from trainer.training.dataset import load_training_set

ROOT = Path(__file__).resolve().parent.parent
RED, BLUE = (220, 30, 30), (20, 20, 230)


def mpo(photo: Image.Image, second: Image.Image) -> bytes:
    """A JPEG with a second picture after it, as Ultra HDR (its gain map), depth and stereo cameras write them."""
    out = io.BytesIO()
    photo.save(out, format="MPO", save_all=True, append_images=[second])
    return out.getvalue()


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind, **options)
    return out.getvalue()


def plain(colour, size=(96, 96)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_the_bot_takes_an_mpo_jpeg_as_its_first_picture_and_an_avif_as_a_photo():
    data = mpo(plain(RED, (640, 512)), plain(BLUE, (320, 256)))
    with Image.open(io.BytesIO(data)) as opened:
        assert (opened.format, opened.n_frames) == ("MPO", 2)  # what the bot used to refuse as an animation
    photo = prepare(data, IntakeLimits())
    assert (photo.source_format, photo.width, photo.height) == ("JPEG", 640, 512)
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert np.abs(np.asarray(stored, dtype=int) - RED).mean() < 4  # the photo, not its second picture

    avif = prepare(encoded(scene(1, 640, 512), "AVIF"), IntakeLimits())
    assert (avif.source_format, avif.width, avif.height) == ("AVIF", 640, 512)
    moving = encoded(scene(2, 640, 512), "AVIF", save_all=True, append_images=[scene(3, 640, 512)])
    with pytest.raises(Rejected, match=r"^this is an animation \(2 frames\)"):
        prepare(moving, IntakeLimits())


def test_the_trainer_reads_heic_avif_and_mpo_photos_from_its_folder(tmp_path):
    (tmp_path / "iphone.heic").write_bytes(encoded(plain(BLUE), "HEIF"))
    (tmp_path / "android.avif").write_bytes(encoded(plain(BLUE), "AVIF"))
    (tmp_path / "ultra-hdr.jpg").write_bytes(mpo(plain(RED), plain(BLUE)))
    training_set = load_training_set(tmp_path, TOKEN, 64)
    pictures = {image.name: np.asarray(image.image, dtype=int) for image in training_set.images}
    assert sorted(pictures) == ["android.avif", "iphone.heic", "ultra-hdr.jpg"]
    assert np.abs(pictures["ultra-hdr.jpg"] - RED).mean() < 4 and np.abs(pictures["iphone.heic"] - BLUE).mean() < 4


def test_known_library_warnings_are_kept_out_and_others_are_not(monkeypatch):
    monkeypatch.setenv("SHOW_LIBRARY_WARNINGS", "true")
    assert quiet_library_warnings() is False  # the setting shows them all
    monkeypatch.setenv("SHOW_LIBRARY_WARNINGS", "false")
    assert quiet_library_warnings() is True
    for name, text in KNOWN:
        seen: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record, seen=seen: seen.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        try:
            logger.warning("<enum 'X'> %s, and more", text)
            logger.warning("something else went wrong")
        finally:
            logger.removeHandler(handler)
        assert seen == ["something else went wrong"], name


def test_the_docker_run_lines_give_ray_its_shared_memory():
    for text in (ROOT / "Dockerfile").read_text(), (ROOT / "README.md").read_text():
        runs = re.findall(r"docker run --gpus [^\n`]*", text)  # the full run lines, not mentions of one option
        assert runs and all("--shm-size=" in run for run in runs), runs


def test_a_short_run_is_sampled_and_checkpointed_at_its_quarters():
    """A 10-step run's timeline and "Use step" buttons show 25, 50 and 75 % as the README says, not 2, 4, 8."""
    from contract import TrainRequest
    from trainer.training.timeline import columns

    request = TrainRequest(base="tiny", token=TOKEN, steps=10)
    sampled = [done for done in range(1, 11) if request.sample_due(done)]
    assert sampled == [3, 5, 8, 10] == [done for done in range(1, 11) if request.checkpoint_due(done)]
    assert columns([0, *sampled], 10) == [0, 3, 5, 8, 10]
    every_two = TrainRequest(base="tiny", token=TOKEN, steps=10, sample_every=2, checkpoint_every=5)
    assert [d for d in range(1, 11) if every_two.sample_due(d)] == [2, 4, 6, 8, 10]
    assert [d for d in range(1, 11) if every_two.checkpoint_due(d)] == [5, 10]


def test_the_contact_sheet_reads_at_the_width_discord_shows_it(tmp_path):
    from bot.ui.contact_sheet import DISCORD_WIDTH, READABLE, contact_sheet, text_size

    path = tmp_path / "me.jpg"
    scene(4, 400, 300).save(path)

    with Image.open(io.BytesIO(contact_sheet([(n, str(path), "me at home") for n in range(1, 9)]))) as sheet:
        assert sheet.width <= 1.2 * DISCORD_WIDTH  # four to a row: shown near its own size
        assert text_size(sheet.width) * DISCORD_WIDTH / sheet.width >= READABLE
