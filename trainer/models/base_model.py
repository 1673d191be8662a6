"""Which Flux base model to use, and loading it.

A base is a Hub id, a local diffusers folder, or `tiny`. All three load through
the same `FluxPipeline.from_pretrained` call; `tiny` is first written to the
model cache by `trainer.models.tiny`, so tests exercise the code that serves FLUX.1-dev.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import BaseModelError
from trainer.models import tiny
from trainer.settings import TrainerSettings, trainer_settings

log = logging.getLogger(__name__)

FLUX_DEV = "black-forest-labs/FLUX.1-dev"
FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"


@dataclass(frozen=True)
class BaseModel:
    """A base model and the defaults that suit it."""

    name: str  # as the person gave it
    location: str  # what from_pretrained is given
    is_tiny: bool = False
    train_resolution: int = 512
    image_resolution: int = 1024
    inference_steps: int = 28
    guidance: float = 3.5  # dev is guidance-distilled; schnell ignores it
    max_sequence_length: int = 512


def _dev_like(name: str, location: str) -> BaseModel:
    return BaseModel(name, location)


def _schnell_like(name: str, location: str) -> BaseModel:
    return BaseModel(name, location, inference_steps=4, guidance=0.0, max_sequence_length=256)


def resolve_base(name: str, settings: TrainerSettings | None = None) -> BaseModel:
    """Turn what a person typed into a BaseModel, building the tiny model if needed."""
    settings = settings or trainer_settings()
    if name == "tiny":
        folder = settings.model_cache_dir / "tiny-flux"
        if tiny.read_marker(folder) is None:
            log.info("building the tiny random Flux model in %s", folder)
            tiny.write_pipeline(folder)
        return _from_folder(name, folder)
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _from_folder(name, folder)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise BaseModelError(f"base model '{name}' is neither a folder that exists nor a Hub id like {FLUX_DEV}")
    if "schnell" in name.lower():
        return _schnell_like(name, name)
    return _dev_like(name, name)


def _from_folder(name: str, folder: Path) -> BaseModel:
    if not (folder / "model_index.json").is_file():
        raise BaseModelError(f"'{folder}' is not a diffusers pipeline folder (it has no model_index.json)")
    shape = tiny.read_marker(folder)
    if shape is not None:
        return BaseModel(
            name,
            str(folder),
            is_tiny=True,
            train_resolution=shape.resolution,
            image_resolution=shape.resolution,
            inference_steps=shape.inference_steps,
            max_sequence_length=shape.max_sequence_length,
        )
    config_file = folder / "transformer" / "config.json"
    guidance_embeds = True
    if config_file.is_file():
        guidance_embeds = json.loads(config_file.read_text()).get("guidance_embeds", True)
    return _dev_like(name, str(folder)) if guidance_embeds else _schnell_like(name, str(folder))


def pick_device(device: str | None = None):
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device):
    """bf16 where the GPU does it well; fp32 on the CPU, where bf16 is slower."""
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_pipeline(base: BaseModel, dtype=None, settings: TrainerSettings | None = None):
    """Load the whole FluxPipeline on the CPU; callers move the parts they need."""
    import torch
    from diffusers import FluxPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    settings = settings or trainer_settings()
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        pipe = FluxPipeline.from_pretrained(base.location, dtype=dtype or torch.float32, token=token)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"could not load base model '{base.name}': {_first_line(exc)}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_transformer(base: BaseModel, dtype=None, settings: TrainerSettings | None = None):
    """A fresh copy of the base's transformer alone, on the CPU (to replace one quantized for another mode)."""
    import torch
    from diffusers import FluxTransformer2DModel

    settings = settings or trainer_settings()
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        return FluxTransformer2DModel.from_pretrained(
            base.location, subfolder="transformer", dtype=dtype or torch.float32, token=token
        )
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"could not load the transformer of '{base.name}': {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    """The gist of a library's error: its first line, without the parenthesised detail."""
    lines = str(exc).strip().splitlines()
    gist = lines[0].split(" (")[0] if lines else type(exc).__name__
    return gist[:300]
