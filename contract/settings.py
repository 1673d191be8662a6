"""Settings both sides read from the environment and `.env` (see .env.example); no torch, no discord.

`WorkSettings` decides what a GPU job does (the base model, the memory mode, the captioner): whoever asks for
the work reads it (the bot, or `python -m trainer` on one machine) and names it in the request, so a worker
never reads it. `ModelSource` is where one machine finds models (its cache, its Hub token): local to each
process that loads a model or a tokenizer, never sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# An empty `KEY=` in .env means "use the default", as .env.example is written.
ENV_CONFIG = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)


class WorkSettings(BaseSettings):
    model_config = ENV_CONFIG

    base_model: str = Field(
        "black-forest-labs/FLUX.1-dev",
        description="Hub id (FLUX.2-klein-base-4B or FLUX.1-dev ...), local diffusers folder, or 'tiny' / "
        "'tiny-klein' for an offline random model.",
    )
    generation_model: str | None = Field(
        None,
        description="What pictures are drawn with, if not BASE_MODEL: a step-distilled model of the same family "
        "and size, e.g. black-forest-labs/FLUX.2-klein-4B for adapters trained on FLUX.2-klein-base-4B.",
    )
    caption_model: str = Field(
        "florence-community/Florence-2-base",
        description="Florence-2 that writes captions for photos without one when training starts (a Hub id, a "
        "folder, or 'tiny' for the offline random one); 'off' writes none. An empty value is the default, as "
        "for every setting, hence 'off'.",
    )
    memory_mode: Literal["auto", "fp32", "bf16", "fp8", "nf4"] = Field(
        "auto",
        description="The frozen base transformer during training: auto (planned from the GPU's memory and the "
        "resolution), bf16, fp8 (torchao) or nf4 (bitsandbytes). A run's own memory_mode overrides it.",
    )

    reference_photos: Literal["adapter", "references", "both"] = Field(
        "adapter",
        description="How a member with an adapter is drawn on a base that takes reference photos (FLUX.2 "
        "[klein]): with the adapter only, their chosen photos only, or both. A member with photos and no "
        "adapter yet is drawn from their photos either way; FLUX.1 draws with adapters alone.",
    )

    @field_validator("caption_model")
    @classmethod
    def _off_is_empty(cls, value: str) -> str:
        return "" if value.strip().lower() == "off" else value.strip()

    @property
    def picture_model(self) -> str:
        """The base pictures are drawn with: GENERATION_MODEL, else BASE_MODEL."""
        return self.generation_model or self.base_model


class ModelSource(BaseSettings):
    model_config = ENV_CONFIG

    model_cache_dir: Path = Field(
        Path("~/.cache/doppel").expanduser(),
        description="Where doppel keeps models it builds itself (the tiny model).",
    )
    hf_token: SecretStr | None = Field(None, description="Hugging Face token for gated models such as FLUX.1-dev.")

    @field_validator("model_cache_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def hub_token(self) -> str | None:
        return self.hf_token.get_secret_value() if self.hf_token else None
