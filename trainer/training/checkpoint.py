"""Everything needed to continue a run exactly where it stopped, in one file (`RunLayout.checkpoint`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from contract.atomic import atomic_write
from contract.subjects import PERSON, subject_of
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


# A run's record, in the words of the options that set it (what a refusal to resume names).
RECORD_WORDS = {
    "dataset_sha256": "the photos or their captions", "target_modules": "the LoRA's modules",
    "family": "the model family", "lr": "--lr", "rank": "--rank", "seed": "--seed", "resolution": "--resolution",
    "base": "--base", "token": "--token", "batch_size": "the batch size", "lr_schedule": "--lr-schedule",
    "alpha": "the LoRA's alpha", "warmup_steps": "--warmup-steps", "steps": "--steps",
    "subject": "--style (a person's or a style's)",
}


def load_checkpoint(path: Path, record: dict | None = None) -> Checkpoint:
    """Read a checkpoint; with `record`, refuse one that belongs to a different run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"there is no checkpoint at '{path}'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise CheckpointError(
            f"the checkpoint '{path.name}' is damaged and cannot be read ({type(exc).__name__})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"'{path.name}' is not a doppel checkpoint")
    # Checkpoints from before model families were recorded are all FLUX.1's; from before styles, people's.
    payload["record"] = {"family": "flux1", "subject": PERSON} | payload["record"]
    if record is not None:
        different = sorted(k for k in record if payload["record"].get(k) != record[k])
        if different:
            raise CheckpointError(
                f"the checkpoint '{path.name}' is from a run with other settings "
                f"({', '.join(RECORD_WORDS.get(k, k) for k in different)}); resume with the settings it was made with"
            )
    return Checkpoint(
        step=payload["step"],
        lora=payload["lora"],
        optimizer=payload["optimizer"],
        lr_scheduler=payload["lr_scheduler"],
        rng=payload["rng"],
        record=payload["record"],
    )


# What an adapter must share with a run to be built on: the LoRA's shape and what it was trained against.
COMPATIBLE = ("family", "base", "rank", "alpha", "target_modules", "subject")


@dataclass
class Start:
    """Where a run that builds on an earlier adapter begins (`TrainConfig.start_from`)."""

    step: int  # the steps already in the adapter; this run's steps count on from here
    lora: dict[str, torch.Tensor]
    optimizer: dict | None = None  # from a checkpoint: Adam's moments carry over
    rng: dict[str, torch.Tensor] | None = None


def load_start(path: Path, record: dict) -> Start:
    """A checkpoint, or an adapter file, to build on. Refused when its LoRA does not fit this run's."""
    from trainer.training.lora_file import load_lora_state, read_facts

    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"there is no adapter at '{path}'")
        facts = read_facts(path)
        theirs = {
            "rank": _int(facts.get("rank")), "alpha": _int(facts.get("alpha")), "base": facts.get("base_model"),
            "family": facts.get("family"), "subject": subject_of(facts),
        }
        _check_fits(path, theirs, record)
        return Start(step=_int(facts.get("steps")) or 0, lora=load_lora_state(path))
    checkpoint = load_checkpoint(path)
    _check_fits(path, checkpoint.record, record)
    return Start(step=checkpoint.step, lora=checkpoint.lora, optimizer=checkpoint.optimizer, rng=checkpoint.rng)


def _check_fits(path: Path, theirs: dict, record: dict) -> None:
    different = [k for k in COMPATIBLE if theirs.get(k) is not None and theirs[k] != record.get(k)]
    if different:
        was = " and ".join(f"{k} {theirs[k]}" for k in different)
        now = " and ".join(f"{k} {record[k]}" for k in different)
        raise CheckpointError(
            f"the adapter to build on ('{path.name}') was trained with {was}, this run has {now}; "
            "it cannot be built on: train from zero instead"
        )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
