"""A job as the rest of the bot sees it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class JobKind(StrEnum):
    TRAIN = "train"
    GENERATE = "generate"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Owner:
    guild_id: int
    member_id: int


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    owner: Owner
    params: dict
    state: JobState
    attempts: int
    progress: dict | None
    error: str | None
    result: dict | None
    checkpoint: str | None
    checkpoint_step: int | None
    cancel_requested: bool
    worker: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row) -> Job:
        loads = lambda text: json.loads(text) if text else None  # noqa: E731
        return cls(
            id=row["id"],
            kind=JobKind(row["kind"]),
            owner=Owner(row["guild_id"], row["member_id"]),
            params=json.loads(row["params"]),
            state=JobState(row["state"]),
            attempts=row["attempts"],
            progress=loads(row["progress"]),
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
