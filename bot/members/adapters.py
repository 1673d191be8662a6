"""A member's adapter: made theirs when a training succeeds, when they choose an earlier step, or when they
bring their own file (/adapter upload). Once, here.

The adapter /imagine uses lives at `MemberStore.adapter_file(owner)`; its row says which
run and step it came from, the checkpoint to train on from, and its identity (the file's
SHA-256), which every picture request names, so that a request can never reach an
adapter other than the one it was made for.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.jobs import files
from bot.jobs.models import Job
from bot.jobs.store import JobStore
from bot.members.owner import Owner
from bot.members.store import Adapter, MemberStore
from contract import JobKind, JobState, RunLayout, adapter_identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chosen:
    step: int | None = None  # the step that is now the member's adapter
    refusal: str | None = None  # why nothing changed, for the member


def _copy_and_identify(source: Path, target: Path) -> str:
    data = Path(source).read_bytes()
    files.write(target, data)
    return adapter_identity(data)


class AdapterService:
    def __init__(self, members: MemberStore, jobs: JobStore, jobs_dir: Path):
        self.members, self.jobs, self.jobs_dir = members, jobs, jobs_dir
        self._locks: defaultdict[Owner, asyncio.Lock] = defaultdict(asyncio.Lock)

    def held(self, owner: Owner) -> asyncio.Lock:
        """The lock adopting and choosing take: forgetting the member holds it while their rows and files go."""
        return self._locks[owner]

    async def current(self, owner: Owner) -> Adapter | None:
        """The member's adapter, its identity filled in (adapters from before identities were kept get one now)."""
        adapter = await self.members.adapter(owner)
        if adapter is None or adapter.identity is not None:
            return adapter
        try:
            identity = await asyncio.to_thread(lambda: adapter_identity(Path(adapter.path).read_bytes()))
        except FileNotFoundError:
            return adapter
        await self.members.set_identity(owner, identity)
        return await self.members.adapter(owner)

    async def adopt(self, job: Job) -> None:
        """A training succeeded: its adapter becomes the member's. Idempotent (a follow-up may run twice)."""
        result = job.training_result
        if result is None:
            return
        async with self._locks[job.owner]:
            if await self.jobs.get(job.id) is None:
                return  # its member was forgotten meanwhile (see `held`): nothing of theirs is written again
            now = await self.members.adapter(job.owner)
            if now is not None and now.job_id is not None and now.job_id > job.id:
                return  # a later run's adapter is theirs already
            target = self.members.adapter_file(job.owner)
            identity = await asyncio.to_thread(_copy_and_identify, Path(result.adapter), target)
            await self.members.set_adapter(
                job.owner, target, job.id, result.steps, identity=identity, state=result.state
            )
            await self._prune_other_runs(job.owner, keep_job=job.id)

    async def take(self, owner: Owner, data: bytes) -> str | None:
        """A member's own, already checked LoRA file becomes their adapter, as a trained one does (no run, so no
        checkpoint to choose or train on from). Returns why not, for the member, or None."""
        async with self._locks[owner]:
            active = await self.jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING)
            if any(j.kind is JobKind.TRAIN for j in active):
                return "You have a training queued or running; upload once it has finished (or /cancel it)."
            target = self.members.adapter_file(owner)
            try:
                await asyncio.to_thread(files.write, target, data)
            except OSError as exc:  # written aside and renamed: the adapter they had is still theirs
                log.error("could not keep an uploaded adapter: %s", exc)
                return "I could not save your file (the bot's disk is full or cannot be written); nothing changed."
            await self.members.set_adapter(owner, target, None, 0, identity=adapter_identity(data))
            await self._prune_other_runs(owner, keep_job=0)
            return None

    async def choose(self, job: Job, step: int) -> Chosen:
        """Make a step of a finished run the member's adapter, and delete the run's other checkpoints."""
        async with self._locks[job.owner]:  # two quick presses must not prune each other's step
            refusal = await self._refusal(job)
            if refusal:
                return Chosen(refusal=refusal)
            layout = RunLayout.of_job(self.jobs_dir, job.id)
            source = layout.step_adapter(step)
            if not await asyncio.to_thread(source.is_file):
                adapter = await self.members.adapter(job.owner)
                steps = adapter.steps if adapter else "another"
                return Chosen(refusal=f"That choice is closed: you chose step {steps}, and the other steps "
                                      "were deleted then.")
            target = self.members.adapter_file(job.owner)
            try:
                identity = await asyncio.to_thread(_copy_and_identify, source, target)
            except OSError as exc:  # a full disk: the copy is written aside and renamed, so nothing changed
                log.error("could not copy step %s of job %s: %s", step, job.id, exc)
                return Chosen(refusal="I could not save your choice (the bot's disk is full or cannot be written); "
                                      "nothing changed. Tell an admin, then try again.")
            await self.members.set_adapter(
                job.owner, target, job.id, step, identity=identity, state=layout.checkpoint(step)
            )
            await asyncio.to_thread(files.prune_checkpoints, layout, step)
            return Chosen(step=step)

    async def _refusal(self, job: Job) -> str | None:
        adapter = await self.members.adapter(job.owner)
        if adapter is None or adapter.job_id != job.id:
            return (
                "A newer training has replaced this run's adapter, so its steps can no longer be chosen; "
                "/train builds on your current one."
            )
        active = await self.jobs.of_owner(job.owner, JobState.QUEUED, JobState.RUNNING)
        if any(j.kind is JobKind.TRAIN for j in active):
            return "You have a training queued or running; choose once it has finished (or /cancel it)."
        return None

    async def _prune_other_runs(self, owner: Owner, keep_job: int) -> None:
        """A new adapter is the member's: the checkpoints of their earlier runs are no longer anyone's to choose."""
        finished = await self.jobs.of_owner(owner, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
        for job in finished:
            if job.kind is JobKind.TRAIN and job.id != keep_job:
                await asyncio.to_thread(files.prune_checkpoints, RunLayout.of_job(self.jobs_dir, job.id))
