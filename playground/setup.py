"""The bot's settings in the playground: the user's own (.env, the environment), except what must point at
the local stand-in and a Ray of its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.settings import BotSettings
from fake_discord import FakeDiscord

ACTOR_PREFIX = "playground"

# A short first training on the tiny model: its pictures are noise whatever the steps, so a newcomer waits
# seconds, not minutes, for the timeline; and 4 photos of at least 64 px, not 10 of 512 px, so that a visitor
# can try it with the photos at hand (the page says so). Said by BASE_MODEL=tiny only; TRAIN_DEFAULT_STEPS,
# MIN_PHOTOS_TO_TRAIN and MIN_PHOTO_SIDE still win.
TINY_DEFAULTS = {"train_default_steps": 40, "min_photos_to_train": 4, "min_photo_side": 64}


def use_base(base: str) -> None:
    """Name the base model for the bot (its settings read the environment; the workers are told in each request)."""
    os.environ["BASE_MODEL"] = base
    if base == "tiny":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model is built offline: nothing to fetch
        # Photos sent without a caption get one at /train: from the tiny captioner too (random, offline), not
        # from a model to download, unless this shell says otherwise (a .env is the real bot's).
        os.environ.setdefault("CAPTION_MODEL", "tiny")


def bot_settings(
    fake: FakeDiscord, guild_id: int, data_dir: Path, gpus: float | None, **overrides: Any
) -> BotSettings:
    defaults = TINY_DEFAULTS if os.environ.get("BASE_MODEL") == "tiny" else {}
    told = BotSettings().model_fields_set  # what the environment or .env says
    given = {name: value for name, value in defaults.items() if name not in told}
    fixed: dict[str, Any] = {
        "discord_token": fake.token,
        "data_dir": data_dir,
        "ray_address": None,  # a local Ray of its own, never the user's cluster
        "ray_num_gpus": gpus,
        "ray_actor_prefix": ACTOR_PREFIX,
        "allowed_guilds": [guild_id],  # the stand-in's server, whatever ALLOWED_GUILDS says for the real one
        "discord_guild_id": None,
        "attachment_hosts": [urlsplit(fake.base_url).netloc],  # photos are fetched from the stand-in's CDN
        "attachment_schemes": ["http"],
    }
    return BotSettings(**{**given, **fixed, **overrides})
