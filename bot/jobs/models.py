"""A job as the rest of the bot sees it: its request, progress and result as types, not dicts.

The record keeps them as JSON. `params` holds the contract's request (`TrainRequest` or
`GenerateRequest`, as `to_data` writes it) plus the bot's own bookkeeping beside it
(where the photos are, which channel to post in); the typed views below read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from bot.members.owner import Owner
from contract import GenerateRequest, JobKind, JobState, TrainRequest


@dataclass(frozen=True)
class Progress:
    """How far a running training is: its phase, then its step. Kept in the record as the latest seen."""

    phase: str = ""
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    resumed_from: int | None = None  # the checkpoint's step, after a resume
    start_step: int = 0  # a run building on an adapter counts on from its steps

    def to_data(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> Progress | None:
        if data is None:
            return None
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class TrainingResult:
    """A finished training's files in the data folder, and what its owner may choose."""

    adapter: str
    facts: dict[str, str]
    samples: tuple[str, ...] = ()
    timeline: str | None = None
    choices: tuple[int, ...] = ()  # steps whose adapters the owner may choose instead of the last
    state: str | None = None  # the last step's checkpoint: what "Train more" builds on
    recommended: int | None = None  # of `choices`, the step most like the member (trainer/training/likeness.py)

    @property
    def steps(self) -> int:
        return int(self.facts.get("steps", 0))

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TrainingResult:
        return cls(
            adapter=data["adapter"],
            facts=dict(data["facts"]),
            samples=tuple(data.get("samples", ())),
            timeline=data.get("timeline"),
            choices=tuple(data.get("choices", ())),
            state=data.get("state"),
            recommended=data.get("recommended"),
        )


@dataclass(frozen=True)
class SavedPicture:
    seed: int
    path: str


@dataclass(frozen=True)
class PicturesResult:
    images: tuple[SavedPicture, ...]

    def to_data(self) -> dict[str, Any]:
        return {"images": [asdict(i) for i in self.images]}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PicturesResult:
        return cls(tuple(SavedPicture(**i) for i in data["images"]))


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    owner: Owner
    params: dict
    state: JobState
    attempts: int
    progress: Progress | None
    error: str | None
    result: dict | None
    checkpoint: str | None
    checkpoint_step: int | None
    cancel_requested: bool
    worker: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def training(self) -> TrainRequest:
        return TrainRequest.from_data(self.params)

    @property
    def picture_request(self) -> GenerateRequest:
        return GenerateRequest.from_data(self.params)

    @property
    def training_result(self) -> TrainingResult | None:
        return TrainingResult.from_data(self.result) if self.result and self.kind is JobKind.TRAIN else None

    @property
    def pictures(self) -> PicturesResult | None:
        return PicturesResult.from_data(self.result) if self.result and self.kind is JobKind.GENERATE else None

    @classmethod
    def from_row(cls, row) -> Job:
        def loads(text: str | None) -> Any:
            return json.loads(text) if text else None

        return cls(
            id=row["id"],
            kind=JobKind(row["kind"]),
            owner=Owner(row["guild_id"], row["member_id"]),
            params=json.loads(row["params"]),
            state=JobState(row["state"]),
            attempts=row["attempts"],
            progress=Progress.from_data(loads(row["progress"])),
            error=row["error"],
            result=loads(row["result"]),
            checkpoint=row["checkpoint"],
            checkpoint_step=row["checkpoint_step"],
            cancel_requested=bool(row["cancel_requested"]),
            worker=row["worker"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )
