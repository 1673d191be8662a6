"""A worker's own settings, from the environment and `.env` (see .env.example): only where this machine finds
models. What decides the work (the base model, the memory mode, the captioner) comes in each request."""

from __future__ import annotations

from contract.settings import ModelSource


class TrainerSettings(ModelSource):
    pass


def trainer_settings() -> TrainerSettings:
    return TrainerSettings()
