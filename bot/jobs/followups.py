"""What follows a job's success, because it succeeded: not because a Discord message happened to be shown.

Services and cogs register handlers by name for a kind of job (making a training's
adapter the member's, then announcing it). When a job succeeds, the store records
one pending follow-up per registered name in the same transaction as the success;
the runner then carries them out in order, each marked done once it returned. After
a crash, `run_pending` at start does what was left, so each runs at least once:
handlers must be idempotent. A handler that fails stops its job's later ones (they
may need it) until the next try: the runner tries pending ones again every RETRY_S
(a Discord call that failed) and at every start (a crash).

DOPPEL_HOLD_FOLLOWUPS_S (tests and drills only, unset in production) holds a success's
follow-ups that long after the success is recorded, and says so in the log: the moment a
fault drill kills the bot.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from bot.jobs.models import Job
from bot.jobs.store import JobStore
from contract import JobKind

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]

RETRY_S = 30.0  # how often follow-ups that failed are tried again
HOLD_S = float(os.environ.get("DOPPEL_HOLD_FOLLOWUPS_S") or 0)


class FollowUps:
    def __init__(self, store: JobStore):
        self.store = store
        self._handlers: dict[JobKind, dict[str, Handler]] = {kind: {} for kind in JobKind}
        self._running: set[int] = set()  # jobs whose follow-ups are being carried out: never twice at once

    def register(self, kind: JobKind, name: str, handler: Handler) -> None:
        """Handlers of a kind run in the order they were registered."""
        self._handlers[kind][name] = handler

    def names(self, kind: JobKind) -> tuple[str, ...]:
        return tuple(self._handlers[kind])

    async def run(self, job_id: int, *, just_succeeded: bool = False) -> None:
        if job_id in self._running:
            return
        self._running.add(job_id)
        try:
            if just_succeeded and HOLD_S:
                log.warning("job %s succeeded; its follow-ups are held for %g s", job_id, HOLD_S)
                await asyncio.sleep(HOLD_S)
            await self._run(job_id)
        finally:
            self._running.discard(job_id)

    async def _run(self, job_id: int) -> None:
        job = await self.store.get(job_id)
        if job is None:
            return
        for name in await self.store.pending_followups(job_id):
            handler = self._handlers[job.kind].get(name)
            if handler is None:
                log.warning("job %s: no handler for follow-up %r; left pending", job_id, name)
                return
            try:
                await handler(job)
            except Exception:
                log.exception("job %s: follow-up %r failed; it is tried again within %g s", job_id, name, RETRY_S)
                return
            await self.store.followup_done(job_id, name)

    async def run_pending(self) -> None:
        for job_id in await self.store.jobs_with_pending_followups():
            await self.run(job_id)
