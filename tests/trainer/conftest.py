"""Fixtures of the face-aware parts of training: a set of real photos, and one short run on them."""

from __future__ import annotations

import pytest

from tests.conftest import TOKEN
from tests.photos import astronaut, variants

MEMBERS_CAPTION = "me in a space suit"


@pytest.fixture(scope="session")
def astronaut_photos(tmp_path_factory):
    """Three photos of one person (a set with an identity); one has the member's own caption, two have none."""
    folder = tmp_path_factory.mktemp("astronaut") / "photos"
    folder.mkdir()
    for name in ("crop", "mirror", "bright"):
        variants(astronaut())[name].save(folder / f"{name}.png")
    (folder / "crop.txt").write_text(MEMBERS_CAPTION)
    return folder


@pytest.fixture(scope="session")
def faces_run(tmp_path_factory, tiny_dir, astronaut_photos):
    """One step of the tiny model on a copy of those photos, captioned by the tiny Florence-2 and sampled at
    each step (its samples are noise: scored, without a face). Returns (photos folder, events, result)."""
    import shutil

    from trainer.training.config import TrainConfig
    from trainer.training.train import train_lora

    folder = tmp_path_factory.mktemp("faces-run") / "photos"
    shutil.copytree(astronaut_photos, folder)
    events: list = []
    config = TrainConfig.from_options(base="tiny", images=folder, token=TOKEN, out=folder.parent / "out", steps=1,
                                      lr=1e-2, checkpoint_every=1, sample_every=1, caption_model="tiny")
    return folder, events, train_lora(config, on_event=events.append)
