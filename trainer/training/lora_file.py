"""The adapter file: diffusers' `pytorch_lora_weights.safetensors`, with doppel's facts in its header."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from contract import ADAPTER_FILENAME
from contract.atomic import atomic_write
from contract.models import FACTS_PREFIX

if TYPE_CHECKING:
    from trainer.training.timeline import Shown

METADATA_PREFIX = FACTS_PREFIX


def save_lora(
    out_dir: Path, lora_state: dict[str, torch.Tensor], lora_config: dict, facts: dict, filename: str = ADAPTER_FILENAME
) -> Path:
    """Write the adapter the way the family's `save_lora_weights` does, plus `doppel.*` metadata.

    diffusers writes the file (key names, its own adapter metadata); we then add
    our header entries and move it into place in one rename. `facts["family"]` names the family.
    """
    from trainer.models.families import family_named

    path = Path(out_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as staging:
        family_named(facts.get("family", "flux1")).save_lora_weights(
            staging, {k: v.detach().cpu().contiguous() for k, v in lora_state.items()}, lora_config
        )
        written = Path(staging) / ADAPTER_FILENAME
        with safe_open(written, framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        metadata.update({METADATA_PREFIX + k: str(v) for k, v in facts.items()})
        tensors = load_file(written)
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def measure_facts(shown: Shown) -> dict[str, str]:
    """The header entries of a run's measure: {"likeness": {step: score or null}} for a person's, when scored, or
    {"heldout_loss": {step: loss}} for a style's, when measured; and "recommended_step"."""
    from trainer.training.heldout import KEY as HELDOUT

    facts = {}
    if shown.scores:
        facts["likeness"] = json.dumps({str(step): score for step, score in sorted(shown.scores.items())})
    if shown.losses:
        facts[HELDOUT] = json.dumps({str(step): loss for step, loss in sorted(shown.losses.items())})
    if facts and shown.recommended is not None:
        facts["recommended_step"] = str(shown.recommended)
    return facts


def load_lora_state(path: Path) -> dict[str, torch.Tensor]:
    """An adapter file's weights as peft names them (`get_peft_model_state_dict`): without diffusers' prefix."""
    prefix = "transformer."
    return {k[len(prefix) :]: v for k, v in load_file(Path(path)).items() if k.startswith(prefix)}


def read_facts(path: Path) -> dict[str, str]:
    """doppel's metadata of an adapter file (token, base model, rank, ...)."""
    with safe_open(Path(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return {k[len(METADATA_PREFIX) :]: v for k, v in metadata.items() if k.startswith(METADATA_PREFIX)}


def lora_config_dict(peft_config) -> dict:
    """A peft LoraConfig as JSON-safe data, for diffusers' adapter metadata."""
    return json.loads(json.dumps(peft_config.to_dict(), default=lambda v: sorted(v) if isinstance(v, set) else str(v)))
