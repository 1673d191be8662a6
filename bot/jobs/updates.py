"""Job updates for subscribers (the Discord layer), no more often than an interval.

Progress is coalesced: a subscriber sees the newest state, never a backlog.
State changes, samples and positions are delivered at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.jobs.models import Progress, TrainingResult
from contract import JobState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobUpdate:
    job_id: int
    state: JobState
    progress: Progress | None = None
    position: int | None = None  # in its queue, while queued
    waiting_for_gpu: bool = False  # queued while no GPU worker is up (a cluster scaling from zero)
    samples: tuple[str, ...] = ()  # newest sample pictures, paths
    error: str | None = None
    result: TrainingResult | None = None


Subscriber = Callable[[JobUpdate], Awaitable[None] | None]


@dataclass
class _Pending:
    update: JobUpdate | None = None
    last_sent: float = 0.0
    timer: asyncio.TimerHandle | None = None


@dataclass
class Updates:
    interval_s: float
    on_flush: Callable[[JobUpdate], Awaitable[None]] | None = None  # e.g. write progress to the record
    _subscribers: dict[int, list[Subscriber]] = field(default_factory=lambda: defaultdict(list))
    _pending: dict[int, _Pending] = field(default_factory=lambda: defaultdict(_Pending))

    def subscribe(self, job_id: int, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers[job_id].append(subscriber)
        return lambda: self._subscribers[job_id].remove(subscriber) if subscriber in self._subscribers[job_id] else None

    def drop(self, job_id: int) -> None:
        """Forget a job's subscribers and its held-back update: nothing more is said about it."""
        self._subscribers.pop(job_id, None)
        pending = self._pending.pop(job_id, None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()

    def has_subscribers(self, job_id: int) -> bool:
        return bool(self._subscribers.get(job_id))

    def subscribed(self) -> set[int]:
        """The jobs someone follows."""
        return {job_id for job_id, subscribers in self._subscribers.items() if subscribers}

    async def publish(self, update: JobUpdate, urgent: bool = False) -> None:
        pending = self._pending[update.job_id]
        pending.update = update
        wait = pending.last_sent + self.interval_s - time.monotonic()
        if urgent or update.state.finished or wait <= 0:
            await self._flush(update.job_id)
        elif pending.timer is None:
            pending.timer = asyncio.get_running_loop().call_later(
                wait, lambda: asyncio.ensure_future(self._flush(update.job_id))
            )
        if update.state.finished:
            self._pending.pop(update.job_id, None)

    async def flush(self, job_id: int) -> None:
        """Deliver a held-back update now (before the job's final one)."""
        await self._flush(job_id)

    async def _flush(self, job_id: int) -> None:
        pending = self._pending.get(job_id)
        if pending is None or pending.update is None:
            return
        update, pending.update = pending.update, None
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        pending.last_sent = time.monotonic()
        if self.on_flush is not None:
            await self.on_flush(update)
        for subscriber in list(self._subscribers.get(job_id, ())):
            try:
                outcome = subscriber(update)
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:  # one broken subscriber must not stop the others or the job
                log.exception("a subscriber of job %s failed", job_id)
        if update.state.finished:
            self._subscribers.pop(job_id, None)
