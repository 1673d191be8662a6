"""The trainer's settings, from the environment and `.env` (see .env.example)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainerSettings(BaseSettings):
    # An empty `KEY=` in .env means "use the default", as .env.example is written.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

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
    model_cache_dir: Path = Field(
        Path("~/.cache/doppel").expanduser(),
        description="Where doppel keeps models it builds itself (the tiny model).",
    )
    hf_token: SecretStr | None = Field(None, description="Hugging Face token for gated models such as FLUX.1-dev.")
    caption_model: str = Field(
        "florence-community/Florence-2-base",
        description="Florence-2 that writes captions for photos without one when training starts (a Hub id, a "
        "folder, or 'tiny' for the offline random one); 'off' writes none. An empty value is the default, as "
        "for every setting, hence 'off'.",
    )
    generator_max_adapters: int = Field(8, ge=4, le=64, description="Adapters kept loaded before the least used goes.")
    lora_hotswap: bool = Field(False, description="Swap adapters in place (for a compiled pipeline).")
    memory_mode: Literal["auto", "fp32", "bf16", "fp8", "nf4"] = Field(
        "auto",
        description="The frozen base transformer during training: auto (planned from the GPU's memory and the "
        "resolution), bf16, fp8 (torchao) or nf4 (bitsandbytes). A run's own memory_mode overrides it.",
    )
    generator_compile: bool = Field(
        False,
        description="torch.compile the generator's transformer, warmed up at start; adapters are then always "
        "hotswapped into fixed slots, so switching members never recompiles.",
    )
    generator_fp8: bool = Field(
        False, description="Generate with fp8 weights and activations in the transformer blocks (torchao)."
    )
    generator_offload: bool | Literal["auto"] = Field(
        False,
        description="Keep the generator's models in CPU memory and move each to the GPU only while it runs "
        "(slower); auto does so on GPUs too small for the whole pipeline.",
    )

    @field_validator("caption_model")
    @classmethod
    def _off_is_empty(cls, value: str) -> str:
        return "" if value.strip().lower() == "off" else value.strip()

    @property
    def picture_model(self) -> str:
        """The base pictures are drawn with: GENERATION_MODEL, else BASE_MODEL."""
        return self.generation_model or self.base_model

    @field_validator("model_cache_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


def trainer_settings() -> TrainerSettings:
    return TrainerSettings()
