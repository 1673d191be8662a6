"""What the tiny random models share (`tiny` for FLUX.1, `tiny_klein` for FLUX.2 [klein]): the byte symbols their
tokenizers are built from, the flow-matching scheduler, and writing a built pipeline atomically with its marker.

A tiny model is the same bytes every time it is built: each module seeds every part it builds, and this one
writes the marker (the shape it was built with) in its dataclass's field order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from contract.atomic import atomic_directory

TINY_MARKER = "doppel_tiny.json"
NOISE_WARNING = "made with the tiny random model: its images are noise, not likenesses"

# FLUX.1-dev's scheduler (FLUX.2 [klein]'s adds an exponential time shift), kept so the data path is the real one.
FLOW_SCHEDULER = dict(
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)


def byte_level_symbols() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE (GPT-2, CLIP, Qwen) uses for bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def write_built(directory: Path, shape: Any, build: Callable[[], Any], on_stage=None) -> Path:
    """`build()` a tiny pipeline of `shape` (a dataclass) and save it with `save_pretrained`, atomically, with
    its marker: the shape, which says how it runs by default."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    directory = Path(directory)
    with atomic_directory(directory, marker=TINY_MARKER) as staging:
        pipeline = build()
        if on_stage:
            on_stage("built")
        pipeline.save_pretrained(staging)
        if on_stage:
            on_stage("written")
        (staging / TINY_MARKER).write_text(json.dumps(asdict(shape), indent=2) + "\n")
    return directory
