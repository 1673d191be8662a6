"""Errors that reach a person: each says what is wrong in their words and what to do."""

from __future__ import annotations

from dataclasses import dataclass


class DoppelError(Exception):
    """A problem with what was asked for, not a bug. Its text is shown as it is."""


class ConfigError(DoppelError):
    """Options out of range or unknown; every problem in one sentence."""


class BaseModelError(DoppelError):
    """The base model could not be found or loaded."""


class CannotDraw(DoppelError):
    """The base model cannot do what the request asks (draw from a picture, draw that large)."""


class CheckpointError(DoppelError):
    """A checkpoint to resume from is missing, damaged, or from another run."""


class TrainingCancelled(DoppelError):
    """Training stopped between two steps because someone asked it to."""

    def __init__(self, step: int):
        super().__init__(f"training was cancelled after step {step}")
        self.step = step


class TrainingPaused(DoppelError):
    """Training stopped between two steps after writing a checkpoint to resume from."""

    def __init__(self, step: int, checkpoint):
        super().__init__(f"training paused after step {step}")
        self.step = step
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class FileProblem:
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class DatasetError(DoppelError):
    """Files of a training set that cannot be used, all of them at once."""

    def __init__(self, problems: list[FileProblem], summary: str | None = None):
        self.problems = problems
        if summary is None:
            count = len(problems)
            summary = f"{count} file{'s' if count != 1 else ''} cannot be used for training"
        super().__init__(f"{summary}: " + "; ".join(str(p) for p in problems) if problems else summary)
