"""Where each waiting job stands in line, told to its subscribers once it has waited a moment."""

from __future__ import annotations

import time

from bot.jobs import policy
from bot.jobs.store import JobStore
from bot.jobs.updates import JobUpdate, Updates
from contract import JobKind, JobState

POSITION_DELAY_S = 1.0


class QueuePositions:
    def __init__(self, store: JobStore, updates: Updates):
        self.store = store
        self.updates = updates
        self._told: dict[int, int] = {}  # the position last told to subscribers; negative: without a GPU
        self._told_at = 0.0

    async def of(self, job_id: int) -> int | None:
        """1 for the next job of its kind to start; None when it is not queued."""
        job = await self.store.get(job_id)
        if job is None or job.state is not JobState.QUEUED:
            return None
        queued = await self.store.in_state(JobState.QUEUED, kind=job.kind)
        return policy.positions(queued, await self.store.last_started(job.kind)).get(job_id)

    def drop(self, job_id: int) -> None:
        self._told.pop(job_id, None)

    async def announce(self, *, waiting_for_gpu: bool) -> None:
        """Tell waiting jobs' subscribers their place in line, once a job has waited a moment.

        A job that starts within POSITION_DELAY_S never hears of a queue, and the whole pass
        runs at most once per POSITION_DELAY_S: during a burst of requests, answering them
        comes before telling them where they stand.
        """
        now = time.time()
        if now - self._told_at < POSITION_DELAY_S:
            return
        self._told_at = now
        still_queued: set[int] = set()
        for kind in JobKind:
            queued = await self.store.in_state(JobState.QUEUED, kind=kind)
            still_queued |= {j.id for j in queued}
            if not any(self.updates.has_subscribers(j.id) for j in queued):
                continue
            places = policy.positions(queued, await self.store.last_started(kind))
            for job in queued:
                place = places[job.id]
                if now - job.created_at < POSITION_DELAY_S or not self.updates.has_subscribers(job.id):
                    continue
                told = -place if waiting_for_gpu else place
                if self._told.get(job.id) != told:
                    self._told[job.id] = told
                    update = JobUpdate(job.id, JobState.QUEUED, job.progress, position=place,
                                       waiting_for_gpu=waiting_for_gpu)
                    await self.updates.publish(update)
        for job_id in set(self._told) - still_queued:
            del self._told[job_id]
