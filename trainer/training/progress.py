"""What a training run tells its caller as it goes, and how the caller stops it.

Phases and steps are the contract's own events (`contract.Phase`, `contract.Step`). Samples
and checkpoints are reported here by their local paths; the Ray worker reads those files
and sends them on as the contract's byte-carrying events.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from contract import CaptionsWritten, Phase, PhaseName, Step


@dataclass(frozen=True)
class SampleEvent:
    step: int
    total: int
    prompts: tuple[str, ...]
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class CheckpointEvent:
    step: int
    total: int
    path: Path  # everything needed to continue from this step
    adapter: Path | None = None  # the adapter as it is at this step


Event = Phase | Step | SampleEvent | CheckpointEvent | CaptionsWritten

__all__ = ["CancelToken", "CheckpointEvent", "Event", "Phase", "PhaseName", "SampleEvent", "Step"]


class CancelToken:
    """Set from any thread; the training loop looks at it between steps.

    `cancel` stops the run. `pause` stops it too, but first writes a checkpoint
    of the last finished step, so the run can be resumed exactly: this is how a
    training run gives the GPU to waiting generations.
    """

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._pause = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def pause(self) -> None:
        self._pause.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()
