"""Every change to a job, as one guarded SQL statement or one transaction.

Each transition names the states it may leave from, so applying it twice, or
racing another, changes nothing the second time: the caller learns from the
return value whether it took effect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.db import Database, first_row
from bot.jobs.fairness import InLine
from bot.jobs.models import SELECT_JOBS, Job, JobNotes, Progress, Request
from bot.members.owner import Owner
from contract import JobKind, JobState


class QueueFull(Exception):
    """The member already has as many jobs waiting as they may."""


@dataclass(frozen=True)
class QueuedJob:
    """A queued job as its place in line needs it: `rank` 1 for its member's oldest of its kind."""

    id: int
    kind: JobKind
    owner: Owner
    created_at: float
    progress: Progress | None
    rank: int


class JobStore:
    def __init__(self, database: Database):
        self.db = database

    @classmethod
    async def open(cls, path: Path) -> JobStore:
        return cls(await Database.open(path))

    async def close(self) -> None:
        await self.db.close()

    async def submit(
        self, kind: JobKind, owner: Owner, request: Request, notes: JobNotes, max_active: int,
    ) -> Job:
        """Queue a job, unless the owner already has `max_active` queued or running."""
        now = time.time()
        async with self.db.transaction() as tx:
            (active,) = await first_row(
                await tx.execute(
                    "SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND member_id = ? AND state IN ('queued', 'running')",
                    (owner.guild_id, owner.member_id),
                )
            )
            if active >= max_active:
                raise QueueFull(f"you already have {active} requests waiting or running; the limit is {max_active}")
            cursor = await tx.execute(
                "INSERT INTO jobs (kind, guild_id, member_id, params, notes, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind.value, owner.guild_id, owner.member_id, json.dumps(request.to_data()),
                 json.dumps(notes.to_data()), now, now),
            )
            for seq, member_id in enumerate(notes.drawn):
                await tx.execute("INSERT INTO job_people (job_id, seq, member_id) VALUES (?, ?, ?)",
                                 (cursor.lastrowid, seq, member_id))
        job = await self.get(cursor.lastrowid) if cursor.lastrowid is not None else None
        if job is None:
            raise LookupError("the job just queued is not in the database")
        return job

    async def get(self, job_id: int) -> Job | None:
        row = await self.db.fetchone(f"{SELECT_JOBS} WHERE id = ?", (job_id,))
        return Job.from_row(row) if row else None

    async def existing(self, job_id: int) -> Job:
        """The job; LookupError when it is not in the record (deleted: its member was forgotten)."""
        job = await self.get(job_id)
        if job is None:
            raise LookupError(f"job {job_id} is not in the record")
        return job

    async def in_state(self, *states: JobState, kind: JobKind | None = None) -> list[Job]:
        marks = ", ".join("?" for _ in states)
        sql = f"{SELECT_JOBS} WHERE state IN ({marks})"
        args: list = [s.value for s in states]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind.value)
        rows = await self.db.fetchall(sql + " ORDER BY id", args)
        return [Job.from_row(row) for row in rows]

    async def of_owner(self, owner: Owner, *states: JobState) -> list[Job]:
        marks = ", ".join("?" for _ in states)
        rows = await self.db.fetchall(
            f"{SELECT_JOBS} WHERE guild_id = ? AND member_id = ? AND state IN ({marks}) ORDER BY id",
            (owner.guild_id, owner.member_id, *(s.value for s in states)),
        )
        return [Job.from_row(row) for row in rows]

    async def drawing(self, person: Owner, *states: JobState) -> list[Job]:
        """Picture jobs in these states, of anyone in the person's server, that use the person's adapter."""
        marks = ", ".join("?" for _ in states)
        rows = await self.db.fetchall(
            f"{SELECT_JOBS} JOIN (SELECT DISTINCT job_id FROM job_people WHERE member_id = ?) AS drawn "  # noqa: S608  (fixed fragments and ? placeholders; the values are bound)
            f"ON drawn.job_id = jobs.id WHERE kind = 'generate' AND guild_id = ? AND state IN ({marks}) ORDER BY id",
            (person.member_id, person.guild_id, *(s.value for s in states)),
        )
        return [Job.from_row(row) for row in rows]

    async def uses_since(self, owner: Owner, kind: JobKind, since: float) -> list[tuple[float, int]]:
        """When the owner asked for each job of a kind since `since` that did not fail, and how much it asked for
        (a picture job's pictures; a training is one), oldest first. A style's training counts as its asker's
        (its notes' `requested_by`): the member is charged for what they asked for, whoever's rows it fills."""
        rows = await self.db.fetchall(
            "SELECT created_at, CASE kind WHEN 'generate' THEN COALESCE(json_extract(params, '$.count'), 1) ELSE 1 END"
            " FROM jobs WHERE guild_id = ? AND (member_id = ? OR json_extract(notes, '$.requested_by') = ?)"
            " AND kind = ? AND created_at >= ? AND state != 'failed' ORDER BY created_at",
            (owner.guild_id, owner.member_id, owner.member_id, kind.value, since),
        )
        return [(at, int(amount)) for at, amount in rows]

    async def last_asked(self, owner: Owner, kind: JobKind) -> float | None:
        """When the owner last asked for a job of a kind, whatever became of it."""
        (at,) = await self.db.fetchone(
            "SELECT MAX(created_at) FROM jobs WHERE guild_id = ? AND member_id = ? AND kind = ?",
            (owner.guild_id, owner.member_id, kind.value),
        )
        return at

    async def last_started(self, kind: JobKind) -> dict[Owner, float]:
        """When each owner last had a job of this kind dispatched: the round-robin's memory."""
        rows = await self.db.fetchall(
            "SELECT guild_id, member_id, last_started FROM queue_members WHERE kind = ? AND last_started IS NOT NULL",
            (kind.value,),
        )
        return {Owner(g, m): t for g, m, t in rows}

    async def in_line(self, kind: JobKind, limit: int | None = None) -> list[InLine]:
        """Members with jobs of a kind queued, in the fair order's first round (bot/jobs/fairness.py)."""
        rows = await self.db.fetchall(
            "SELECT guild_id, member_id, queued, first_queued, last_started FROM queue_members"
            " WHERE kind = ? AND queued > 0 ORDER BY last_started, first_queued LIMIT ?",
            (kind.value, -1 if limit is None else limit),
        )
        return [InLine(Owner(g, m), queued, first, started) for g, m, queued, first, started in rows]

    async def oldest_queued(self, owner: Owner, kind: JobKind, limit: int) -> list[Job]:
        rows = await self.db.fetchall(
            f"{SELECT_JOBS} WHERE guild_id = ? AND member_id = ? AND kind = ? AND state = 'queued' ORDER BY id LIMIT ?",
            (owner.guild_id, owner.member_id, kind.value, limit),
        )
        return [Job.from_row(row) for row in rows]

    async def jobs(self, ids: Iterable[int]) -> list[Job]:
        """These jobs, those still in the record, by id."""
        found = []
        for chunk in _chunks(sorted(set(ids))):
            marks = ", ".join("?" for _ in chunk)
            found += [Job.from_row(r) for r in await self.db.fetchall(f"{SELECT_JOBS} WHERE id IN ({marks})", chunk)]
        return sorted(found, key=lambda j: j.id)

    async def queued_of(self, ids: Iterable[int]) -> list[QueuedJob]:
        """Of these jobs, the queued ones, each with its rank among its member's queued jobs of its kind."""
        found = []
        for chunk in _chunks(sorted(set(ids))):
            marks = ", ".join("?" for _ in chunk)
            rows = await self.db.fetchall(
                "SELECT id, kind, guild_id, member_id, created_at, progress, (SELECT COUNT(*) FROM jobs AS older"  # noqa: S608  (fixed fragments and ? placeholders)
                " WHERE older.guild_id = jobs.guild_id AND older.member_id = jobs.member_id AND older.kind = jobs.kind"
                " AND older.state = 'queued' AND older.id <= jobs.id) FROM jobs"
                f" WHERE state = 'queued' AND id IN ({marks}) ORDER BY id",
                chunk,
            )
            found += [
                QueuedJob(i, JobKind(k), Owner(g, m), created, Progress.from_data(json.loads(p)) if p else None, rank)
                for i, k, g, m, created, p, rank in rows
            ]
        return found

    async def running_owners(self, kind: JobKind) -> set[Owner]:
        rows = await self.db.fetchall(
            "SELECT DISTINCT guild_id, member_id FROM jobs WHERE state = 'running' AND kind = ?", (kind.value,)
        )
        return {Owner(g, m) for g, m in rows}

    async def any_queued(self) -> bool:
        (found,) = await self.db.fetchone("SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued')")
        return bool(found)

    async def _update(self, job_id: int, allowed: tuple[JobState, ...], assignments: str, args: tuple) -> bool:
        marks = ", ".join("?" for _ in allowed)
        cursor = await self.db.execute(
            f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ? AND state IN ({marks})",  # noqa: S608  (assignments are this class's fixed fragments)
            (*args, time.time(), job_id, *(s.value for s in allowed)),
        )
        return cursor.rowcount == 1

    async def claim(self, job_id: int, worker: str) -> bool:
        """queued -> running on `worker`; counts an attempt."""
        return await self._update(
            job_id,
            (JobState.QUEUED,),
            "state = 'running', worker = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?)",
            (worker, time.time()),
        )

    async def requeue(self, job_id: int, count_attempt: bool = True) -> bool:
        """running -> queued, to resume from its checkpoint. A job that yielded the GPU was not at fault."""
        return await self._update(
            job_id,
            (JobState.RUNNING,),
            "state = 'queued', worker = NULL" + ("" if count_attempt else ", attempts = attempts - 1"),
            (),
        )

    async def record_progress(self, job_id: int, progress: Progress) -> bool:
        return await self._update(job_id, (JobState.RUNNING,), "progress = ?", (json.dumps(progress.to_data()),))

    async def record_checkpoint(self, job_id: int, path: str, step: int) -> bool:
        return await self._update(
            job_id, (JobState.RUNNING, JobState.QUEUED), "checkpoint = ?, checkpoint_step = ?", (path, step)
        )

    async def finish(
        self, job_id: int, state: JobState, *, result: dict | None = None, error: str | None = None,
        followups: tuple[str, ...] = (),
    ) -> bool:
        """running -> succeeded, failed or cancelled. A queued job may be failed or cancelled too.

        A success records `followups` (names, in order) as pending, in the same transaction.
        """
        if not state.finished:
            raise ValueError(f"a job is finished as succeeded, failed or cancelled, not {state.value}")
        allowed = (JobState.RUNNING,) if state is JobState.SUCCEEDED else (JobState.RUNNING, JobState.QUEUED)
        marks = ", ".join("?" for _ in allowed)
        now = time.time()
        async with self.db.transaction() as tx:
            cursor = await tx.execute(
                f"UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ?, worker = NULL, updated_at = ? "  # noqa: S608  (fixed fragments and ? placeholders; the values are bound)
                f"WHERE id = ? AND state IN ({marks})",
                (state.value, json.dumps(result) if result is not None else None, error, now, now, job_id,
                 *(s.value for s in allowed)),
            )
            changed = cursor.rowcount == 1
            if changed and state is JobState.SUCCEEDED:
                for seq, name in enumerate(followups):
                    await tx.execute("INSERT INTO followups (job_id, name, seq) VALUES (?, ?, ?)", (job_id, name, seq))
        return changed

    async def pending_followups(self, job_id: int) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT name FROM followups WHERE job_id = ? AND done_at IS NULL ORDER BY seq", (job_id,)
        )
        return [row[0] for row in rows]

    async def jobs_with_pending_followups(self) -> list[int]:
        rows = await self.db.fetchall("SELECT DISTINCT job_id FROM followups WHERE done_at IS NULL ORDER BY job_id")
        return [row[0] for row in rows]

    async def followup_done(self, job_id: int, name: str) -> None:
        await self.db.execute(
            "UPDATE followups SET done_at = ? WHERE job_id = ? AND name = ?", (time.time(), job_id, name)
        )

    async def request_cancel(self, job_id: int) -> JobState | None:
        """A queued job is cancelled at once; a running one is marked for the runner to stop."""
        if await self._update(
            job_id, (JobState.QUEUED,), "state = 'cancelled', finished_at = ?, worker = NULL", (time.time(),)
        ):
            return JobState.CANCELLED
        await self._update(job_id, (JobState.RUNNING,), "cancel_requested = 1", ())
        job = await self.get(job_id)
        return job.state if job else None


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    """Pieces small enough for one statement's parameters."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]
