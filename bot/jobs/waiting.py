"""Whoever waits for a job to finish: woken as it does, or as it is deleted from the record."""

from __future__ import annotations

import asyncio

from bot.jobs.models import Job
from bot.jobs.store import JobStore


class Waiting:
    def __init__(self, store: JobStore):
        self.store = store
        self._finished: dict[int, asyncio.Event] = {}  # only jobs someone waits for
        self._waiters: set[asyncio.Future] = set()

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it has finished (succeeded, failed or cancelled). LookupError: it is not in the record."""
        job = await self.store.existing(job_id)
        if job.state.finished:
            return job
        event = self._finished.setdefault(job_id, asyncio.Event())  # set, and dropped, when the job finishes
        job = await self.store.existing(job_id)  # it may have finished just now, before the event was there
        if not job.state.finished:
            waiter = asyncio.ensure_future(asyncio.wait_for(event.wait(), timeout))
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)
            job = await self.store.existing(job_id)
        return job

    def wake(self, job_id: int) -> None:
        """The job finished, or is gone."""
        event = self._finished.pop(job_id, None)
        if event is not None:
            event.set()

    def cancel_all(self) -> None:
        """The bot stops: whoever still waits is cancelled (the job itself runs after a restart)."""
        for waiter in list(self._waiters):
            waiter.cancel()
