"""Which base model to use, and loading it.

A base is a Hub id, a local diffusers folder, or a tiny model's name (`tiny`: FLUX.1;
`tiny-klein` and `tiny-klein-distilled`: FLUX.2 [klein]). All load through their
family's `from_pretrained`; a tiny model is first written to the model cache
(`trainer.models.tiny`, `trainer.models.tiny_klein`), so tests exercise the code that
serves the real models. The family is read from the folder's model_index.json.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from contract.models import TINY_FOLDERS
from trainer.errors import BaseModelError
from trainer.models.families import FLUX1, Family, family_of_folder, family_of_hub_id, family_of_tiny
from trainer.models.tiny_build import TINY_MARKER
from trainer.settings import TrainerSettings, trainer_settings

log = logging.getLogger(__name__)

FLUX_DEV = "black-forest-labs/FLUX.1-dev"
FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"
KLEIN_BASE_4B = "black-forest-labs/FLUX.2-klein-base-4B"
KLEIN_4B = "black-forest-labs/FLUX.2-klein-4B"


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
    family: Family = FLUX1


def _with_defaults(name: str, location: str, family: Family, transformer_config: dict, index: dict) -> BaseModel:
    d = family.defaults(transformer_config, index)
    return BaseModel(name, location, False, d.train_resolution, d.image_resolution, d.inference_steps, d.guidance,
                     d.max_sequence_length, family)


def resolve_base(name: str, settings: TrainerSettings | None = None) -> BaseModel:
    """Turn what a person typed into a BaseModel, building the tiny model if needed."""
    settings = settings or trainer_settings()
    if name in TINY_FOLDERS:
        folder = settings.model_cache_dir / TINY_FOLDERS[name]
        if not (folder / TINY_MARKER).is_file():
            log.info("building the tiny random model %s in %s", name, folder)
            write_tiny(name, folder)
        return _from_folder(name, folder)
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _from_folder(name, folder)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise BaseModelError(
            f"base model '{name}' is neither a folder that exists nor a Hub id like {KLEIN_BASE_4B} or {FLUX_DEV}"
        )
    # Not downloaded yet: the family and its variant from the id; loading reads the real model_index.json.
    lowered = name.lower()
    return _with_defaults(name, name, family_of_hub_id(name), {"guidance_embeds": "schnell" not in lowered},
                          {"is_distilled": "base" not in lowered})


def write_tiny(name: str, folder: Path, on_stage=None) -> Path:
    """Build the tiny model `name` (a key of TINY_FOLDERS) into `folder`, atomically, with its marker."""
    return family_of_tiny(name).write_tiny(name, folder, on_stage)


def _from_folder(name: str, folder: Path) -> BaseModel:
    index = folder / "model_index.json"
    if not index.is_file():
        raise BaseModelError(f"'{folder}' is not a diffusers pipeline folder (it has no model_index.json)")
    family = family_of_folder(folder)
    config_file = folder / "transformer" / "config.json"
    transformer_config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    base = _with_defaults(name, str(folder), family, transformer_config, json.loads(index.read_text()))
    marker = folder / TINY_MARKER
    if marker.is_file():  # a tiny model: it runs at the size and step count it was built for
        shape = json.loads(marker.read_text())
        resolution = shape["resolution"]
        return replace(base, is_tiny=True, train_resolution=resolution, image_resolution=resolution,
                       inference_steps=shape["inference_steps"], max_sequence_length=shape["max_sequence_length"])
    return base


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
    """Load the whole pipeline of the base's family on the CPU; callers move the parts they need."""
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    settings = settings or trainer_settings()
    token = settings.hub_token
    try:
        pipe = base.family.pipeline_class().from_pretrained(base.location, dtype=dtype or torch.float32, token=token)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"could not load base model '{base.name}': {_first_line(exc)}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_transformer(base: BaseModel, dtype=None, settings: TrainerSettings | None = None):
    """A fresh copy of the base's transformer alone, on the CPU (to replace one quantized for another mode)."""
    import torch

    settings = settings or trainer_settings()
    token = settings.hub_token
    try:
        return base.family.transformer_class().from_pretrained(
            base.location, subfolder="transformer", dtype=dtype or torch.float32, token=token
        )
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"could not load the transformer of '{base.name}': {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    """The gist of a library's error: its first line, without the parenthesised detail."""
    lines = str(exc).strip().splitlines()
    gist = lines[0].split(" (")[0] if lines else type(exc).__name__
    return gist[:300]
