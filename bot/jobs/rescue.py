"""The runner's recovery, carried out: what bot/jobs/recovery.py decides, done to the record, the workers
and Ray. A lost worker, a lost Ray, a follower that raised, a restart, a pause asked for or not taken, a
request that cannot be read."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from bot.jobs import recovery
from bot.jobs.models import Job
from bot.jobs.policy import Worker
from bot.jobs.recovery import Act, Decision
from bot.jobs.transport import WorkerLost
from contract import JobState

if TYPE_CHECKING:
    from bot.jobs.runner import JobRunner

log = logging.getLogger(__name__)


class Rescue:
    def __init__(self, runner: JobRunner):
        self.runner = runner
        self.pausing: dict[int, float] = {}  # training job id -> when it was asked to pause
        self.forced: set[int] = set()  # of those, the ones stopped by force

    async def settle(self, job_id: int, decided: Decision, *, result: dict | None = None) -> None:
        """Carry out what bot/jobs/recovery.py decided for the job."""
        finish = self.runner.finish
        if decided.act is Act.REQUEUE:
            await self.requeue(job_id, count_attempt=decided.count_attempt)
        elif decided.act is Act.SUCCEED:
            await finish(job_id, JobState.SUCCEEDED, result=result)
        elif decided.act is Act.FAIL:
            await finish(job_id, JobState.FAILED, error=decided.reason)
        elif decided.act is Act.CANCEL:
            await finish(job_id, JobState.CANCELLED, error="cancelled")

    async def requeue(self, job_id: int, *, count_attempt: bool) -> None:
        """Back to the queue, to resume from its checkpoint (or cancelled, if that was asked for)."""
        store = self.runner.store
        decided = recovery.back_to_queue(await store.existing(job_id), count_attempt=count_attempt)
        if decided.act is Act.REQUEUE:
            await store.requeue(job_id, count_attempt=decided.count_attempt)
        else:
            await self.settle(job_id, decided)

    async def guarded(self, coroutine: Coroutine[Any, Any, None], job_id: int | None) -> None:
        """Run a job's follower; whatever escapes it fails the job with why (none is left followed by nobody)."""
        try:
            await coroutine
        except Exception as exc:
            if job_id is None:
                log.exception("a background task of the runner failed")
                return
            await self.following_failed(job_id, exc)

    async def readable(self, jobs: list[Job]) -> list[Job]:
        """Of these queued jobs, those whose request can be read; any other fails with why."""
        readable = []
        for job in jobs:
            if (refused := recovery.unreadable(job)) is not None:
                log.error("job %s has a request that cannot be read: %s", job.id, job.request_problem)
                await self.settle(job.id, refused)
            else:
                readable.append(job)
        return readable

    async def pause_all(self, within: float, dispatching: asyncio.Task | None) -> None:
        """No new work; each running training checkpoints and goes back to the queue (the pause path)."""
        runner = self.runner
        if dispatching is not None:
            dispatching.cancel()
        running = [t for t in runner.trainers if t.job_id is not None]
        for trainer in running:
            log.info("stopping: job %s writes a checkpoint to resume from", trainer.job_id)
            with contextlib.suppress(WorkerLost):
                await runner.transport.pause(trainer, trainer.job_id)  # type: ignore[arg-type]
        deadline = time.monotonic() + within
        while (late := [t for t in running if t.job_id is not None]) and (left := deadline - time.monotonic()) > 0:
            runner.wake.clear()  # set as each follower ends
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.wake.wait(), left)
        if late:
            log.warning("stopping: %d training(s) did not pause within %g s; they resume from an older checkpoint",
                        len(late), within)

    async def worker_lost(self, job_id: int, worker: Worker) -> None:
        """The worker died or restarted under the job: requeue it from its checkpoint, or give up."""
        runner = self.runner
        worker.job_id = None
        ray_lost = runner.transport.ray_lost()
        if not ray_lost:  # Ray itself going is no worker's fault: all are brought up anew
            runner.workers.lost(worker)
        job = await runner.store.existing(job_id)
        decided = recovery.worker_lost(job, ray_lost=ray_lost, forced=job_id in self.forced,
                                       max_attempts=runner.settings.max_job_attempts)
        await self.settle(job_id, decided)
        if decided.act is Act.REQUEUE and not ray_lost:
            log.warning("job %s lost its worker; it resumes from step %s", job_id, job.checkpoint_step or 0)
            await runner.announce(await runner.store.existing(job_id))

    async def following_failed(self, job_id: int, exc: Exception) -> None:
        """Following a job raised: the job fails with a reason its member can read, or waits for a new Ray."""
        runner = self.runner
        decided = recovery.following_failed(exc, ray_lost=runner.transport.ray_lost())
        if decided.act is Act.REQUEUE:
            log.warning("job %s lost Ray under it (%s); it waits for a new one", job_id, exc)
        elif decided.operator:
            log.error("job %s failed: %s (%s, %s)", job_id, decided.reason, runner.settings.data_dir, exc)
        else:
            log.exception("following job %s failed", job_id, exc_info=exc)
        try:
            await self.settle(job_id, decided)
        except Exception:  # the record cannot be written either: the next start requeues the job
            log.exception("job %s could not be marked failed", job_id)

    async def reconcile(self) -> None:
        """After a restart: reattach to training that is still running, requeue what was lost."""
        runner = self.runner
        by_name = {t.name: t for t in runner.trainers}
        reattached = set()
        for job in await runner.store.in_state(JobState.RUNNING):
            worker = by_name.get(job.worker or "")
            current = await runner.transport.current(worker) if worker else None
            decided = recovery.found_running(job, current[0] if current else None)
            if worker is not None and decided.act is Act.REATTACH:
                worker.job_id = job.id
                reattached.add(job.id)
                runner.spawn(runner.training.follow(job.id, worker), job.id)
                if decided.stop:
                    await runner.transport.cancel(worker, job.id)
                log.info("reattached to job %s on %s", job.id, worker.name)
            else:
                await self.settle(job.id, decided)
                log.info("job %s was lost while the bot was away: requeued, or cancelled as asked", job.id)
        for worker in runner.trainers:
            current = await runner.transport.current(worker)
            if current is not None and recovery.abandoned(current[0], reattached):
                with contextlib.suppress(WorkerLost):
                    await runner.transport.cancel(worker, current[0])
                    await runner.transport.release(worker, current[0])

    def enforce_pauses(self) -> None:
        """A training that has not paused in time is stopped by force; it resumes from its checkpoint."""
        limit = recovery.pause_limit_s(self.runner.settings.generation_max_wait_s)
        running = {t.job_id: t for t in self.runner.trainers if t.job_id is not None}
        for job_id in [j for j in self.pausing if j not in running]:
            self.pausing.pop(job_id)
            self.forced.discard(job_id)
        for job_id in recovery.overdue(self.pausing, self.forced, time.monotonic(), limit):
            log.warning("job %s did not pause within %.1f s: stopping its worker", job_id, limit)
            self.forced.add(job_id)
            self.runner.transport.stop_by_force(running[job_id])

    async def recover_ray(self) -> None:
        """The local Ray is gone (its GCS or raylet died): what ran goes back to the queue, not counted as an
        attempt (no job's fault); a new local Ray is started, with backoff; workers are brought up again."""
        runner = self.runner
        log.error("Ray is lost (its GCS or raylet stopped): jobs wait while a new local Ray starts")
        await runner.cancel_tasks()
        await runner.workers.forget_all()
        self.pausing.clear()
        self.forced.clear()
        for job in await runner.store.in_state(JobState.RUNNING):
            await self.settle(job.id, recovery.REQUEUE_FREE)
            await runner.announce(await runner.store.existing(job.id))
        for attempt in itertools.count():
            try:
                await runner.transport.restart_ray()
                break
            except Exception:
                wait = recovery.ray_retry_wait(attempt)
                log.exception("starting a new local Ray failed; trying again in %g s", wait)
                await asyncio.sleep(wait)
        log.warning("a new local Ray is up: bringing up GPU workers, then the queue resumes")
        await runner.discover()
        runner.wake.set()
