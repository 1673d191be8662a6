"""Shared fixtures. No test reaches the network: the Hub is switched off before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["BASE_MODEL"] = "tiny"  # the default for anything that does not name its base
# The bot's tests upload drawn faces, which dlib rightly finds none in: face checks are on only where a test
# says so (tests/bot/test_face_checks.py, with real photographs).
os.environ["FACE_CHECKS"] = "false"
# No Florence-2 from the Hub either: captions are written (by the tiny captioner) where a test's request asks.
os.environ["CAPTION_MODEL"] = "off"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from pathlib import Path

import pytest

from tests.photos import write_photos

TOKEN = "THGH96"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """A model cache for the whole run; `tiny` is built into it once."""
    cache = tmp_path_factory.mktemp("model-cache")
    os.environ["MODEL_CACHE_DIR"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_dir(model_cache) -> Path:
    from trainer.models.base_model import resolve_base

    return Path(resolve_base("tiny").location)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_dir, photos):
    """One short run with a high learning rate (a random tiny model needs it to show learning)."""
    from trainer.training.config import TrainConfig
    from trainer.training.train import train_lora

    out = tmp_path_factory.mktemp("trained")
    return train_lora(
        TrainConfig.from_options(
            base="tiny", images=photos, token=TOKEN, out=out, steps=30, lr=1e-2, checkpoint_every=10, sample_every=15
        )
    )
