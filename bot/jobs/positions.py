"""Where each waiting job stands in line, told to its subscribers once it has waited a moment.

A place is worked out from each member's count of waiting jobs and the line's first round
(`fairness.places`, on the table queue_members), not by reading and ordering every queued
job: telling a thousand subscribers costs a thousand small rows, whatever else waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from bot.jobs import fairness
from bot.jobs.fairness import InLine
from bot.jobs.store import JobStore, QueuedJob
from bot.jobs.updates import JobUpdate, Updates
from contract import JobKind, JobState

POSITION_DELAY_S = 1.0
YIELD_EVERY = 200  # jobs told between turns of the event loop
# From this many followed jobs, their places are worked out in a thread: 100,000 take 0.4 s of Python.
IN_THREAD_FROM = 2000
KIND_ORDER = {kind: index for index, kind in enumerate(JobKind)}


class QueuePositions:
    def __init__(self, store: JobStore, updates: Updates, in_thread_from: int = IN_THREAD_FROM):
        self.store = store
        self.updates = updates
        self.in_thread_from = in_thread_from
        self._told: dict[int, int] = {}  # the position last told to subscribers; negative: without a GPU
        self._told_at = 0.0

    async def of(self, job_id: int) -> int | None:
        """1 for the next job of its kind to start; None when it is not queued."""
        return (await self.places(await self.store.queued_of([job_id]))).get(job_id)

    async def places(self, queued: Iterable[QueuedJob]) -> dict[int, int]:
        """Each of these queued jobs' place in line among its kind, 1 for the next to start."""
        return (await self._standing(queued))[1]

    async def _standing(self, queued: Iterable[QueuedJob]) -> tuple[list[QueuedJob], dict[int, int]]:
        """These queued jobs in the order they are told (by kind, then age), and each one's place."""
        queued = list(queued)
        kinds = {job.kind for job in queued}
        lines = {kind: await self.store.in_line(kind) for kind in JobKind if kind in kinds}
        if len(queued) < self.in_thread_from:
            return standing_of(queued, lines)
        return await asyncio.to_thread(standing_of, queued, lines)  # pure Python, but the loop gets turns meanwhile

    def drop(self, job_id: int) -> None:
        self._told.pop(job_id, None)

    async def announce(self, *, waiting_for_gpu: bool) -> None:
        """Tell waiting jobs' subscribers their place in line, once a job has waited a moment.

        A job that starts within POSITION_DELAY_S never hears of a queue, and the whole pass
        runs at most once per POSITION_DELAY_S: during a burst of requests, answering them
        comes before telling them where they stand. Only jobs someone follows are looked at.
        """
        now = time.time()
        if now - self._told_at < POSITION_DELAY_S:
            return
        self._told_at = now
        queued, places = await self._standing(await self.store.queued_of(self.updates.subscribed()))
        for count, job in enumerate(queued):
            if count % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # thousands followed: the bot's answers go on between them
            if now - job.created_at < POSITION_DELAY_S:
                continue
            place = places[job.id]
            told = -place if waiting_for_gpu else place
            if self._told.get(job.id) != told:
                self._told[job.id] = told
                update = JobUpdate(job.id, JobState.QUEUED, job.progress, position=place,
                                   waiting_for_gpu=waiting_for_gpu)
                await self.updates.publish(update)
        for job_id in set(self._told) - {j.id for j in queued}:  # started, finished, or nobody follows it now
            del self._told[job_id]


def standing_of(queued: list[QueuedJob], lines: dict[JobKind, list[InLine]]) -> tuple[list[QueuedJob], dict[int, int]]:
    """The queued jobs by kind and age, and each one's place among its kind (`lines`: each kind's in_line)."""
    result: dict[int, int] = {}
    for kind, line in lines.items():
        of_kind = [job for job in queued if job.kind is kind]
        found = fairness.places(line, [(j.owner, j.rank) for j in of_kind])
        result |= {job.id: found[job.owner, job.rank] for job in of_kind}
    return sorted(queued, key=lambda j: (KIND_ORDER[j.kind], j.id)), result
