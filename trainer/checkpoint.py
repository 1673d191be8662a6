"""Everything needed to continue a run exactly where it stopped, in one file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.atomic import atomic_write
from trainer.errors import CheckpointError

FORMAT = 1


@dataclass
class Checkpoint:
    step: int
    lora: dict[str, torch.Tensor]
    optimizer: dict
    lr_scheduler: dict
    rng: dict[str, torch.Tensor]  # the run's noise generator, and torch's own
    record: dict  # the run's settings; a resume must match them


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:06d}.ckpt"


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> Path:
    payload = {
        "format": FORMAT,
        "step": checkpoint.step,
        "lora": {k: v.detach().cpu() for k, v in checkpoint.lora.items()},
        "optimizer": checkpoint.optimizer,
        "lr_scheduler": checkpoint.lr_scheduler,
        "rng": checkpoint.rng,
        "record": checkpoint.record,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, record: dict | None = None) -> Checkpoint:
    """Read a checkpoint; with `record`, refuse one that belongs to a different run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"there is no checkpoint at '{path}'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"the checkpoint '{path.name}' is damaged and cannot be read ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"'{path.name}' is not a doppel checkpoint")
    if record is not None:
        different = sorted(k for k in record if payload["record"].get(k) != record[k])
        if different:
            raise CheckpointError(
                f"the checkpoint '{path.name}' is from a run with other settings ({', '.join(different)}); "
                "resume with the settings it was made with"
            )
    return Checkpoint(
        step=payload["step"],
        lora=payload["lora"],
        optimizer=payload["optimizer"],
        lr_scheduler=payload["lr_scheduler"],
        rng=payload["rng"],
        record=payload["record"],
    )
