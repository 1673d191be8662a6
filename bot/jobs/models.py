"""A job as the rest of the bot sees it: its request, notes, progress and result as types, not dicts.

The record keeps them as JSON, read here and nowhere else: `params` holds the contract's
request (`TrainRequest` or `GenerateRequest`, as `to_data` writes it), parsed once as a row
is read; `notes` the bot's own bookkeeping beside it (`JobNotes`: where the photos are,
which channel to post in); who a picture draws is the table `job_people`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bot.members.owner import Owner
from bot.styles.store import is_style_owner
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


# Each row with the members its picture draws, in their order (bot/migrations/009_job_notes_and_people.sql).
SELECT_JOBS = (
    "SELECT jobs.*, (SELECT json_group_array(member_id) FROM (SELECT member_id FROM job_people"
    " WHERE job_people.job_id = jobs.id ORDER BY seq)) AS people FROM jobs"
)


@dataclass(frozen=True)
class Reply:
    """A member's waiting interaction reply: where a picture goes while Discord's token for it lives."""

    application_id: int
    token: str = field(repr=False)  # Discord's, for 15 minutes: never in a log line
    expires_at: float


@dataclass(frozen=True)
class JobNotes:
    """The bot's own notes on a job, beside its request. A training: its photos, and what it builds on.
    A picture: its adapters' files, whom it draws (one member per person's adapter, in order), the styles it is
    drawn in (one style per style adapter, in order), and where it goes."""

    images_dir: str | None = None
    start_from: str | None = None
    snapshot: bool = False  # `images_dir` is a copy made for this run alone, deleted when it ends
    # A style's training: the member who asked (a style has no roles or quota; theirs are checked and charged).
    requested_by: int | None = None
    adapter_files: Mapping[str, str] = field(default_factory=dict)  # identity -> file: adapters, a source
    people: tuple[int, ...] = ()  # member ids; kept in the table job_people
    styles: tuple[int, ...] = ()  # the styles' own (negative) member ids; kept in job_people after the people
    reference_files: Mapping[str, str] = field(default_factory=dict)  # reference photo identity -> its file
    plain: bool = False  # the plain model: the member has no adapter yet
    channel_id: int | None = None
    reply: Reply | None = None

    @property
    def drawn(self) -> tuple[int, ...]:
        """Whose rows the picture draws on, as the table job_people keeps them: its people, then its styles (so
        that erasing either, a member or a style, deletes the picture)."""
        return (*self.people, *self.styles)

    def to_data(self) -> dict[str, Any]:
        """The `notes` column: all but `people` and `styles` (the table job_people)."""
        data = {k: v for k, v in asdict(self).items() if k not in ("people", "styles") and v is not None}
        return data | {"adapter_files": dict(self.adapter_files), "reference_files": dict(self.reference_files)}

    @classmethod
    def from_data(cls, data: dict[str, Any] | None, drawn: list[int] | None = None) -> JobNotes:
        """`drawn`: the job's rows of job_people, in order; a style's are told by its owner (`is_style_owner`)."""
        data = data or {}
        owners = [Owner(0, member_id) for member_id in drawn or ()]
        reply = data.get("reply")
        return cls(
            images_dir=data.get("images_dir"),
            start_from=data.get("start_from"),
            snapshot=bool(data.get("snapshot")),
            requested_by=data.get("requested_by"),
            adapter_files=dict(data.get("adapter_files") or {}),
            people=tuple(o.member_id for o in owners if not is_style_owner(o)),
            styles=tuple(o.member_id for o in owners if is_style_owner(o)),
            reference_files=dict(data.get("reference_files") or {}),
            plain=bool(data.get("plain")),
            channel_id=data.get("channel_id"),
            reply=Reply(reply["application_id"], reply["token"], reply["expires_at"]) if reply else None,
        )


Request = TrainRequest | GenerateRequest


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    owner: Owner
    request: Request | None  # None when it cannot be read: `request_problem` says why
    notes: JobNotes
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
    request_problem: str | None = None  # why the request cannot be read (one written by an older doppel, say)

    @property
    def training(self) -> TrainRequest:
        if not isinstance(self.request, TrainRequest):
            raise ValueError(self.request_problem or f"job {self.id} is not a training")
        return self.request

    @property
    def picture_request(self) -> GenerateRequest:
        if not isinstance(self.request, GenerateRequest):
            raise ValueError(self.request_problem or f"job {self.id} is not a picture")
        return self.request

    @property
    def training_result(self) -> TrainingResult | None:
        return TrainingResult.from_data(self.result) if self.result and self.kind is JobKind.TRAIN else None

    @property
    def pictures(self) -> PicturesResult | None:
        return PicturesResult.from_data(self.result) if self.result and self.kind is JobKind.GENERATE else None

    @classmethod
    def from_row(cls, row) -> Job:
        """A row of SELECT_JOBS."""
        def loads(text: str | None) -> Any:
            return json.loads(text) if text else None

        kind = JobKind(row["kind"])
        request: Request | None = None
        problem = None
        try:
            request = (TrainRequest if kind is JobKind.TRAIN else GenerateRequest).from_data(json.loads(row["params"]))
        except (TypeError, KeyError, ValueError) as exc:  # RequestError is a ValueError
            problem = str(exc) or type(exc).__name__
        return cls(
            id=row["id"],
            kind=kind,
            owner=Owner(row["guild_id"], row["member_id"]),
            request=request,
            notes=JobNotes.from_data(loads(row["notes"]), loads(row["people"])),
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
            request_problem=problem,
        )
