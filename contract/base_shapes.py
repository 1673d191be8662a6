"""What a base model's transformer looks like, without torch: its family, and its weights' shapes from the
safetensors headers of its folder (read, never loaded), so that a member's LoRA file can be checked against it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from contract.models import TINY_FOLDERS

_PIPELINES = {"FluxPipeline": "flux1", "Flux2KleinPipeline": "flux2-klein"}
_KLEIN_HINTS = ("flux.2-klein", "flux2-klein", "tiny-klein")


def base_folder(name: str, model_cache_dir: Path) -> Path | None:
    """The base's diffusers folder on this machine, where there is one (a tiny model built, a local folder)."""
    folder = Path(model_cache_dir) / TINY_FOLDERS[name] if name in TINY_FOLDERS else Path(name).expanduser()
    return folder if (folder / "model_index.json").is_file() else None


def base_family(name: str, folder: Path | None) -> str:
    """'flux1' or 'flux2-klein': from the folder's model_index.json, else from the name."""
    if folder is not None:
        try:
            class_name = json.loads((folder / "model_index.json").read_text()).get("_class_name", "")
        except (OSError, ValueError):
            class_name = ""
        if class_name in _PIPELINES:
            return _PIPELINES[class_name]
    return "flux2-klein" if any(hint in name.lower() for hint in _KLEIN_HINTS) else "flux1"


def transformer_shapes(folder: Path | None) -> dict[str, tuple[int, ...]] | None:
    """Every weight's shape in the folder's transformer, by diffusers' name; None when it is not here."""
    if folder is None:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted((folder / "transformer").glob("*.safetensors")):
        try:
            with file.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):
            return None
        header.pop("__metadata__", None)
        shapes.update({name: tuple(entry["shape"]) for name, entry in header.items()})
    return shapes or None
