"""Base models as both sides name them: the tiny ones doppel builds itself, and what an adapter says it was
trained on (its file's header), read without torch."""

from __future__ import annotations

import json
import struct
from pathlib import Path

# A tiny model's name -> its folder in MODEL_CACHE_DIR (built there on first use by the trainer).
# The model families by name, with their titles in words: said once, torch-free, for the bot and the CLI's
# choices (trainer/models/families holds each family's code; tests/trainer/test_tiny.py checks they agree).
FAMILY_TITLES = {"flux1": "FLUX.1", "flux2-klein": "FLUX.2 [klein]"}
TINY_FOLDERS = {"tiny": "tiny-flux", "tiny-klein": "tiny-klein", "tiny-klein-distilled": "tiny-klein-distilled"}

# Reference photos a base model's pipeline can draw a person from (its `image=[...]`), by the pipeline class its
# model_index.json names; a class not here takes none. The trainer's families read their `max_references`
# from here, so the bot (no torch) knows it too.
REFERENCES_BY_PIPELINE = {"Flux2KleinPipeline": 4}
_KLEIN = "Flux2KleinPipeline"
_TINY_PIPELINES = {"tiny": "FluxPipeline", "tiny-klein": _KLEIN, "tiny-klein-distilled": _KLEIN}

FACTS_PREFIX = "doppel."  # doppel's entries in an adapter file's safetensors header


def adapter_facts(path: Path | str) -> dict[str, str]:
    """doppel's entries of an adapter file's header (token, base_model, family, steps ...); {} when it is not a
    readable safetensors file. A safetensors file starts with the header's length (8 bytes, little-endian),
    then the header, JSON with the metadata under `__metadata__`."""
    try:
        with Path(path).open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                return {}
            metadata = json.loads(handle.read(length)).get("__metadata__") or {}
    except (OSError, ValueError, struct.error, AttributeError):
        return {}
    return {k[len(FACTS_PREFIX) :]: v for k, v in metadata.items() if k.startswith(FACTS_PREFIX)}


def references_taken(base: str) -> int:
    """How many reference photos the base model `base` (a tiny name, a diffusers folder or a Hub id) takes:
    0 where its family has none. A Hub id not downloaded yet is told by its name, as the trainer does."""
    if base in _TINY_PIPELINES:
        return REFERENCES_BY_PIPELINE.get(_TINY_PIPELINES[base], 0)
    index = Path(base).expanduser() / "model_index.json"
    if index.is_file():
        try:
            return REFERENCES_BY_PIPELINE.get(json.loads(index.read_text()).get("_class_name", ""), 0)
        except (OSError, ValueError):
            return 0
    lowered = base.lower()
    return REFERENCES_BY_PIPELINE[_KLEIN] if "flux.2-klein" in lowered or "flux2-klein" in lowered else 0
