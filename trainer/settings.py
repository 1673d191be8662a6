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
        description="Hub id, local diffusers folder, or 'tiny' for the offline random model.",
    )
    model_cache_dir: Path = Field(
        Path("~/.cache/doppel").expanduser(),
        description="Where doppel keeps models it builds itself (the tiny model).",
    )
    hf_token: SecretStr | None = Field(None, description="Hugging Face token for gated models such as FLUX.1-dev.")
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

    @field_validator("model_cache_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


def trainer_settings() -> TrainerSettings:
    return TrainerSettings()
