"""What a GPU worker reports while and after it works, and the states jobs and runs are in.

A training run's events cross Ray as these types, in order, each with a sequence
number (`Report`); files travel inside them as bytes, since the bot and the worker
share no disk. The bot's artifact sink writes them where `layout` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class JobKind(StrEnum):
    TRAIN = "train"
    GENERATE = "generate"


class JobState(StrEnum):
    """A job in the bot's record."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class RunStatus(StrEnum):
    """A run on a worker. `paused`: it wrote a checkpoint and stopped, to give the GPU to pictures."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


class PhaseName(StrEnum):
    PLANNING = "planning"  # the memory plan; its detail says why
    READING = "reading"
    LOADING = "loading"
    CACHING = "caching"
    CAPTIONING = "captioning"  # writing captions for the photos that have none
    RESUMING = "resuming"  # from this run's own checkpoint; `step` is the checkpoint's
    CONTINUING = "continuing"  # building on an earlier adapter; `step` is the adapter's
    TRAINING = "training"
    SAVING = "saving"


@dataclass(frozen=True)
class Phase:
    name: PhaseName
    detail: str = ""
    step: int | None = None


@dataclass(frozen=True)
class Step:
    step: int
    total: int
    loss: float
    lr: float
    elapsed_s: float
    eta_s: float
    model_s: float | None = None  # forward + backward, when the run times its steps


@dataclass(frozen=True)
class SampleTaken:
    """The sample prompts drawn at a step, PNG bytes in prompt order, and how like the member each one is.

    `likeness`, one per image when the run could score them (its photos showed the member's face):
    1 - the face distance to the member's identity, higher is more alike; None where no face was found.
    Empty when the run scored nothing.
    """

    step: int
    total: int
    prompts: tuple[str, ...]
    images: tuple[bytes, ...]
    likeness: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class CaptionsWritten:
    """Captions the worker wrote for photos that had none, by the photo's file name, before training on them."""

    captions: dict[str, str]


@dataclass(frozen=True)
class CheckpointSaved:
    """Everything to train on from `step` (`state`), and the adapter as it is there, for its owner to choose."""

    step: int
    total: int
    state: bytes
    adapter: bytes | None = None


@dataclass(frozen=True)
class TrainingDone:
    """The run's adapter, what its header says, and its timeline (drawn from every attempt's samples)."""

    adapter: bytes
    facts: dict[str, str]
    timeline: bytes | None = None
    timeline_steps: tuple[int, ...] = ()  # the steps the timeline's columns show, first to last
    # Per column of the timeline: its likeness (None: no likeness, a prompt drew no face); and the column
    # recommended (most like the member while every prompt still drew a face), None when none is.
    likeness: tuple[float | None, ...] = ()
    recommended: int | None = None


Event = Phase | Step | SampleTaken | CaptionsWritten | CheckpointSaved | TrainingDone


@dataclass(frozen=True)
class Picture:
    seed: int
    png: bytes


@dataclass(frozen=True)
class PicturesMade:
    """A generator's answer: the pictures, or why there are none; and the adapters it holds now (for routing)."""

    pictures: tuple[Picture, ...] = ()
    loaded: tuple[str, ...] = ()
    error: str | None = None  # for a person


@dataclass(frozen=True)
class Report:
    """A poll's answer: the run's status and the events after the ones already received (numbered)."""

    status: RunStatus
    events: tuple[tuple[int, Event], ...] = field(default=())
    error: str | None = None  # for a person, when the run failed
