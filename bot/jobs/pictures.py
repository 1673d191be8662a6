"""A picture job on its generator: consent checked as it starts and again before anything is kept, its
adapters handed over by identity, its pictures kept or not."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.jobs import files, recovery
from bot.jobs.models import Job
from bot.jobs.policy import Replica
from bot.jobs.transport import WorkerLost
from contract import GenerateRequest, JobState, adapter_identity, reference_identity

if TYPE_CHECKING:
    from bot.jobs.runner import JobRunner

log = logging.getLogger(__name__)


class ConsentCheck(Protocol):
    async def refusal(self, job: Job) -> str | None:
        """None: the picture job may use the adapters it names (their people's consent); else why not."""


class PictureRun:
    def __init__(self, runner: JobRunner, consent: ConsentCheck | None):
        self.runner = runner
        self.consent = consent  # asked as the job starts and again before its pictures are kept

    async def run(self, job: Job, replica: Replica) -> None:
        runner = self.runner
        try:
            refusal = await runner.access_refusal(job) or await self._refusal(job)
            if refusal is not None:
                await runner.finish(job.id, JobState.FAILED, error=refusal)
                return
            await runner.announce(job)
            request = job.picture_request
            try:
                await self._hand_over_adapters(job, request)
            except (files.MissingInput, OSError) as exc:
                await runner.finish(job.id, JobState.FAILED, error=f"a file it needs could not be read ({exc})")
                return
            try:
                photos = await asyncio.to_thread(read_references, job, request)
            except (files.MissingInput, OSError) as exc:
                await runner.finish(job.id, JobState.FAILED, error=f"a photo to draw from could not be read ({exc})")
                return
            replica.offloaded = False
            try:
                made = await runner.transport.generate(replica, request, runner.settings.generation_timeout_s,
                                                       photos)
            except WorkerLost:
                replica.adapters = set()
                await runner.rescue.worker_lost(job.id, replica)
                return
            replica.adapters = set(made.loaded)
            now = await runner.store.get(job.id)
            if now is None:  # forgotten while it was drawn: nothing is kept
                return
            decided = recovery.picture_drawn(now, made.error)
            if decided is not None:
                await runner.rescue.settle(job.id, decided)
            elif (refusal := await self._refusal(now)) is not None:  # consent, again, before anything is kept
                await runner.finish(job.id, JobState.FAILED, error=refusal)
            else:
                saved = await runner.sink.pictures(job.id, made)
                if not await runner.forgotten(job.id):
                    await runner.finish(job.id, JobState.SUCCEEDED, result=saved.to_data())
        finally:
            replica.job_id = None
            runner.wake.set()

    async def _refusal(self, job: Job) -> str | None:
        """The consent check's answer; a check that fails refuses (never draw someone unchecked)."""
        if self.consent is None:
            return None
        try:
            return await self.consent.refusal(job)
        except Exception:
            log.exception("checking consent for job %s failed", job.id)
            return "I could not check that everyone in it still agrees; ask again"

    async def _hand_over_adapters(self, job: Job, request: GenerateRequest) -> None:
        """Each adapter's bytes into Ray's object store, once per identity, checked against that identity;
        the picture it draws from (if any) too, as if it were one more."""
        transport = self.runner.transport
        travelling = [(use.name, use.identity, f"the adapter '{use.name}'") for use in request.adapters]
        if request.source is not None:
            # Named after the picture's first person, so that forgetting them drops it from the store too.
            name = request.adapters[0].name if request.adapters else "pictures"
            travelling.append((name, request.source.identity, "the picture to draw from"))
        for name, identity, what in travelling:
            if transport.holds(identity):
                continue
            path = job.notes.adapter_files.get(identity)
            if path is None:
                raise files.MissingInput(f"this request does not say where {what} is")
            try:
                data = await asyncio.to_thread(Path(path).read_bytes)
            except FileNotFoundError:
                raise files.MissingInput(f"{what} is gone") from None
            if await asyncio.to_thread(adapter_identity, data) != identity:
                raise files.MissingInput(f"{what} has changed since this was asked for; ask again")
            await transport.put_adapter(name, identity, data)


def read_references(job: Job, request: GenerateRequest) -> dict[str, bytes]:
    """The request's reference photos by identity, each checked against it. Blocking: call it in a thread."""
    photos = {}
    for ref in request.references:
        path = job.notes.reference_files.get(ref.identity)
        if path is None:
            raise files.MissingInput("this request does not say where a photo to draw from is")
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise files.MissingInput("a photo to draw from is gone") from None
        if reference_identity(data) != ref.identity:
            raise files.MissingInput("a photo to draw from has changed since this was asked for; ask again")
        photos[ref.identity] = data
    return photos
