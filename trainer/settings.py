"""The trainer's settings, from the environment and `.env` (see .env.example)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainerSettings(BaseSettings):
    # An empty `KEY=` in .env means "use the default", as .env.example is written.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    base_model: str = Field(
        "black-forest-labs/FLUX.1-dev",
        description="Hub id, local diffusers folder, or 'tiny' for the offline random model.",
    )
    model_cache_dir: Path = Field(
        Path("~/.cache/doppel").expanduser(),
        description="Where doppel keeps models it builds itself (the tiny model).",
    )
    hf_token: SecretStr | None = Field(None, description="Hugging Face token for gated models such as FLUX.1-dev.")
    generator_max_adapters: int = Field(8, ge=4, le=64, description="Adapters kept loaded before the least used goes.")
    lora_hotswap: bool = Field(False, description="Swap adapters in place (for a compiled pipeline).")

    @field_validator("model_cache_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


def trainer_settings() -> TrainerSettings:
    return TrainerSettings()
