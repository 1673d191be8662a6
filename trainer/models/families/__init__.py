"""Model families: what differs between FLUX.1 and FLUX.2 [klein], each said once, in its own module.

Training, caching, samples, generation and hotswap ask the family of their base model
(`BaseModel.family`) instead of testing which model it is. A family is recognised from a
pipeline folder's `model_index.json` (its `_class_name`), or, for a Hub id not downloaded
yet, from the id.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.errors import BaseModelError
from trainer.models.families.base import Family, PromptEmbedding
from trainer.models.families.flux1 import FLUX1
from trainer.models.families.flux2_klein import FLUX2_KLEIN

FAMILIES: dict[str, Family] = {family.name: family for family in (FLUX1, FLUX2_KLEIN)}

__all__ = ["FAMILIES", "FLUX1", "FLUX2_KLEIN", "Family", "PromptEmbedding", "family_named", "family_of_folder",
           "family_of_hub_id", "family_of_pipeline", "family_of_tiny"]


def family_named(name: str) -> Family:
    """The family an adapter's header or a request names ('flux1', 'flux2-klein')."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise BaseModelError(f"unknown model family '{name}' (known: {', '.join(FAMILIES)})") from None


def family_of_tiny(name: str) -> Family:
    """The family of a tiny model's name (a key of contract.models.TINY_FOLDERS)."""
    return next(family for family in FAMILIES.values() if name in family.tiny_shapes)


def family_of_folder(folder: Path) -> Family:
    """The family of a diffusers pipeline folder, from the pipeline class its model_index.json names."""
    index = Path(folder) / "model_index.json"
    try:
        class_name = json.loads(index.read_text()).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"'{folder}' has no readable model_index.json ({type(exc).__name__})") from exc
    for family in FAMILIES.values():
        if class_name in family.pipeline_class_names:
            return family
    known = ", ".join(n for f in FAMILIES.values() for n in f.pipeline_class_names)
    raise BaseModelError(f"'{folder}' is a {class_name or 'unnamed'} pipeline; doppel trains {known}")


def family_of_hub_id(name: str) -> Family:
    """The family of a Hub id before anything is downloaded: its model_index.json is read at load time."""
    lowered = name.lower()
    return next((f for f in FAMILIES.values() if any(hint in lowered for hint in f.hub_id_hints)), FLUX1)


def family_of_pipeline(pipe) -> Family:
    """The family of a loaded pipeline (or one derived from it, like its inpainting pipeline)."""
    name = type(pipe).__name__
    for family in FAMILIES.values():
        if name in family.pipeline_class_names or name.replace("Inpaint", "") in family.pipeline_class_names:
            return family
    raise BaseModelError(f"a {name} is not a pipeline doppel knows")
