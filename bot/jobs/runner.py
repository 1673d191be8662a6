"""The job runner: takes jobs from the record, runs them on the GPU workers, writes back what happened.

It runs on the bot's event loop and only awaits. Its parts, each in its own module:
`policy` decides what starts and who steps aside (pure), `transport` talks to the
Ray workers, `workers` keeps track of which of them are up, `sink` reads a job's
inputs and writes what it made into the run's layout, and `followups` carries out
what a success sets in motion. The runner holds them together and keeps the record true.

A job whose worker is lost goes back to the queue and resumes from its newest
checkpoint; after MAX_JOB_ATTEMPTS such losses it fails with a message. GPU nodes
may come and go (a cluster that scales from zero): jobs wait, and say so, while
no GPU worker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.jobs import files, policy
from bot.jobs.followups import RETRY_S, FollowUps
from bot.jobs.models import Job, Progress, TrainingResult
from bot.jobs.policy import Replica, Worker
from bot.jobs.sink import ArtifactSink
from bot.jobs.store import JobStore
from bot.jobs.transport import RayTransport, WorkerLost
from bot.jobs.updates import JobUpdate, Subscriber, Updates
from bot.jobs.workers import WorkerPool
from bot.members.owner import Owner
from bot.settings import BotSettings
from contract import (
    CaptionsWritten,
    CheckpointSaved,
    GenerateRequest,
    JobKind,
    JobState,
    Phase,
    PhaseName,
    RunStatus,
    SampleTaken,
    Step,
    TrainingDone,
    TrainRequest,
    adapter_identity,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
POSITION_DELAY_S = 1.0
COALESCE_S = 0.05
TIMINGS_KEPT = 10_000
RAY_RETRY_S = (1, 2, 5, 10, 30, 60)  # waits between tries to start a new local Ray; then every minute

ConsentCheck = Callable[[Job], Awaitable[str | None]]  # None: the job may use its adapters; else why not


class JobRunner:
    def __init__(self, store: JobStore, settings: BotSettings, transport: RayTransport | None = None):
        self.store = store
        self.settings = settings
        self.transport = transport or RayTransport(settings)
        self.sink = ArtifactSink(settings.jobs_dir)
        self.followups = FollowUps(store)
        self.updates = Updates(settings.progress_interval_s, on_flush=self._record_progress)
        self._wake = asyncio.Event()
        self.workers = WorkerPool(self.transport, settings, on_change=self._wake.set)
        self._tasks: set[asyncio.Task] = set()
        self._finished: dict[int, asyncio.Event] = {}  # for wait(): only jobs someone waits for
        self._pausing: dict[int, float] = {}  # training job id -> when it was asked to pause
        self._forced: set[int] = set()  # of those, the ones stopped by force
        self._positions: dict[int, int] = {}  # the queue position last told to subscribers
        self._progress: dict[int, Progress] = {}  # the newest progress of each running training
        self._waiters: set[asyncio.Future] = set()  # callers of wait(), cancelled by stop()
        self._positions_told_at = 0.0
        self._followups_tried_at = time.monotonic()
        self._loop_task: asyncio.Task | None = None
        self._recovering: asyncio.Task | None = None  # a new local Ray being started in place of a lost one
        self.timings: dict[int, dict[str, float]] = {}  # job id -> submitted, started, finished (monotonic)
        # Set by the bot: whether a picture job may still use the adapters it names (their people's consent).
        # Asked when the job starts and again before its pictures are kept; a refusal fails the job with why.
        self.consent: ConsentCheck | None = None
        # Set by the bot: give captions a training's worker wrote to the member's photos that have none.
        self.captions_written: Callable[[Job, dict[str, str]], Awaitable[None]] | None = None

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Join Ray, find the workers, reconcile the record with them, finish follow-ups, then dispatch."""
        await self.transport.connect()
        await self._discover()
        log.info("%d GPU(s), sharing policy %s", len(self.trainers), self.policy)
        await self._reconcile()
        await self.followups.run_pending()
        self._loop_task = asyncio.create_task(self._dispatch_loop())

    async def stop(self, *, checkpoint_within: float | None = None) -> None:
        """Stop following jobs. Training continues on its detached workers; the next start reattaches.

        `checkpoint_within` (a local Ray, which ends with the bot): running trainings are asked to pause instead,
        writing a checkpoint that the next start resumes from, and are waited for that long at most.
        Whoever still waits for a job is cancelled: the job itself stays in the record and runs after a restart.
        """
        if checkpoint_within is not None:
            await self._pause_all(checkpoint_within)
        for waiter in list(self._waiters):
            waiter.cancel()
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        if self._recovering is not None:
            tasks.append(self._recovering)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await self.workers.stop()

    async def _pause_all(self, within: float) -> None:
        """No new work; each running training checkpoints and goes back to the queue (the pause path)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
        running = [t for t in self.trainers if t.job_id is not None]
        for trainer in running:
            log.info("stopping: job %s writes a checkpoint to resume from", trainer.job_id)
            with contextlib.suppress(WorkerLost):
                await self.transport.pause(trainer, trainer.job_id)  # type: ignore[arg-type]
        deadline = time.monotonic() + within
        while (late := [t for t in running if t.job_id is not None]) and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()  # set as each follower ends
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        if late:
            log.warning("stopping: %d training(s) did not pause within %g s; they resume from an older checkpoint",
                        len(late), within)

    @property
    def trainers(self) -> list[Worker]:
        return self.workers.trainers

    @property
    def generators(self) -> list[Replica]:
        return self.workers.generators

    @property
    def policy(self) -> str:
        return self.workers.policy

    @property
    def gpu_ready(self) -> bool:
        """Whether any trainer is up: without one, queued jobs wait for a GPU node to join."""
        return self.workers.ready

    async def _discover(self) -> None:
        await self.workers.discover(demand=bool(await self.store.in_state(JobState.QUEUED)))

    async def _reconcile(self) -> None:
        """After a restart: reattach to training that is still running, requeue what was lost."""
        by_name = {t.name: t for t in self.trainers}
        reattached = set()
        for job in await self.store.in_state(JobState.RUNNING):
            worker = by_name.get(job.worker or "")
            current = await self.transport.current(worker) if job.kind is JobKind.TRAIN and worker else None
            if worker is not None and current is not None and current[0] == job.id:
                worker.job_id = job.id
                reattached.add(job.id)
                self._spawn(self._follow_training(job.id, worker), job.id)
                if job.cancel_requested:
                    await self.transport.cancel(worker, job.id)
                log.info("reattached to job %s on %s", job.id, worker.name)
            else:
                await self._requeue(job.id, count_attempt=False)
                log.info("job %s was lost while the bot was away: requeued, or cancelled as asked", job.id)
        for worker in self.trainers:  # work nobody is waiting for any more
            current = await self.transport.current(worker)
            if current is not None and current[0] not in reattached:
                with contextlib.suppress(WorkerLost):
                    await self.transport.cancel(worker, current[0])
                    await self.transport.release(worker, current[0])

    # ---- what the bot calls -----------------------------------------------------------------

    async def submit_training(
        self, owner: Owner, request: TrainRequest, *, images_dir: Path | str, start_from: Path | str | None = None,
        snapshot: bool = False,
    ) -> Job:
        """Queue a training of the photos (and captions) in `images_dir`, building on `start_from` if given.

        `snapshot`: `images_dir` is a copy made for this run alone, deleted when the run ends. Any other
        folder is left as it is: the runner deletes nothing it was not told it may.
        """
        inputs = {"images_dir": str(images_dir), "start_from": str(start_from) if start_from else None,
                  "snapshot": snapshot}
        params = request.to_data() | inputs
        return await self._submit(JobKind.TRAIN, owner, params)

    async def submit_generation(
        self, owner: Owner, request: GenerateRequest, adapter_files: Mapping[str, Path | str], **extras: Any,
    ) -> Job:
        """Queue pictures. `adapter_files`: where each adapter's bytes are, by identity (checked when read).
        `extras`: the bot's own notes kept with the job (where to post it, for example)."""
        params = request.to_data() | {"adapter_files": {k: str(v) for k, v in adapter_files.items()}} | extras
        return await self._submit(JobKind.GENERATE, owner, params)

    async def _submit(self, kind: JobKind, owner: Owner, params: dict) -> Job:
        job = await self.store.submit(kind, owner, params, self.settings.max_active_jobs_per_member)
        self._time(job.id, "submitted")
        self._wake.set()
        return job

    async def cancel(self, job_id: int) -> JobState | None:
        """Cancel a queued job at once; ask a running one to stop at its next step."""
        state = await self.store.request_cancel(job_id)
        if state is JobState.CANCELLED:
            await self._tidy(await self._job(job_id))
            await self._announce(await self._job(job_id))
        elif state is JobState.RUNNING:
            worker = next((t for t in self.trainers if t.job_id == job_id), None)
            followed = worker is not None or any(g.job_id == job_id for g in self.generators)
            if worker is not None:
                with contextlib.suppress(WorkerLost):
                    await self.transport.cancel(worker, job_id)
            elif not followed:  # nobody follows it (its follower died): nobody else would ever end it
                await self._finish(job_id, JobState.CANCELLED, error="cancelled")
                return (await self._job(job_id)).state
            # A picture takes seconds: it finishes, and is then not delivered.
        return state

    async def refuse_pictures_of(
        self, person: Owner, reason: str, still_allowed: Callable[[Owner], Awaitable[bool]] | None = None,
    ) -> list[int]:
        """Stop the queued and running picture jobs of other members that use `person`'s adapter: all of them,
        or those whose requester is not `still_allowed` any more. Each fails at once with `reason` (what their
        requester reads instead of pictures; a failure is not counted as their use); pictures still being
        made are not kept. Returns the jobs stopped."""
        stopped = []
        for job in await self.store.drawing(person, JobState.QUEUED, JobState.RUNNING):
            if job.owner == person or (still_allowed is not None and await still_allowed(job.owner)):
                continue
            if await self._finish(job.id, JobState.FAILED, error=reason):
                stopped.append(job.id)
        return stopped

    async def forget_adapter(self, name: str) -> None:
        """Remove an adapter from every generator and from Ray's object store (its owner deleted it)."""
        self.transport.drop_blobs_of(name)
        for replica in self.generators:
            replica.adapters.discard(name)
            await self.transport.forget_adapter(replica, name)

    def let_go(self, job_ids: Iterable[int]) -> None:
        """Jobs deleted from the record (their member was forgotten): nobody hears of them again, and whoever
        waits for one wakes (and finds it gone). Files they still make are removed as they come."""
        for job_id in job_ids:
            self.updates.drop(job_id)
            self._positions.pop(job_id, None)
            event = self._finished.pop(job_id, None)
            if event is not None:
                event.set()

    async def _forgotten(self, job_id: int) -> bool:
        """Whether the job is gone from the record; if so, its run folder goes too (call it after writing)."""
        if await self.store.get(job_id) is not None:
            return False
        await self.sink.remove(job_id)
        return True

    async def position(self, job_id: int) -> int | None:
        """1 for the next job of its kind to start; None when it is not queued."""
        job = await self.store.get(job_id)
        if job is None or job.state is not JobState.QUEUED:
            return None
        queued = await self.store.in_state(JobState.QUEUED, kind=job.kind)
        return policy.positions(queued, await self.store.last_started(job.kind)).get(job_id)

    def subscribe(self, job_id: int, subscriber: Subscriber):
        """Call `subscriber(JobUpdate)` as the job moves; returns a function that unsubscribes."""
        return self.updates.subscribe(job_id, subscriber)

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it has finished (succeeded, failed or cancelled)."""
        job = await self._job(job_id)
        if job.state.finished:
            return job
        event = self._finished.setdefault(job_id, asyncio.Event())  # set, and dropped, when the job finishes
        job = await self._job(job_id)  # it may have finished just now, before the event was there
        if not job.state.finished:
            waiter = asyncio.ensure_future(asyncio.wait_for(event.wait(), timeout))
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)
            job = await self._job(job_id)
        return job

    # ---- dispatching ------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await asyncio.sleep(COALESCE_S)  # a burst of submissions makes one pass, not one each
            self._wake.clear()
            try:
                if self._recovering is None and self.transport.ray_lost():
                    self._recovering = asyncio.create_task(self._recover_ray())
                if self._recovering is not None:  # jobs wait, and say the GPU workers are unavailable
                    if not self._recovering.done():
                        await self._announce_positions()
                        continue
                    self._recovering = None
                if self.workers.due:
                    await self._discover()
                await self._dispatch()
                if time.monotonic() - self._followups_tried_at > RETRY_S:
                    self._followups_tried_at = time.monotonic()
                    self._spawn(self.followups.run_pending())
            except Exception:
                log.exception("dispatching failed; trying again")
            finally:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _dispatch(self) -> None:
        decided = policy.plan(
            pictures=await self._readable(JobKind.GENERATE),
            trainings=await self._readable(JobKind.TRAIN),
            last_started={kind.value: await self.store.last_started(kind) for kind in JobKind},
            training_owners={j.owner for j in await self.store.in_state(JobState.RUNNING, kind=JobKind.TRAIN)},
            trainers=[t for t in self.trainers if t.ready],
            generators=[g for g in self.generators if g.ready],
            policy=self.policy,
            pausing=set(self._pausing),
        )
        for trainer in decided.pause:
            if trainer.job_id is not None:
                self._pausing[trainer.job_id] = time.monotonic()
                with contextlib.suppress(WorkerLost):
                    await self.transport.pause(trainer, trainer.job_id)
        for job, replica in decided.generations:
            if await self.store.claim(job.id, replica.name):
                replica.job_id = job.id
                self._time(job.id, "started")
                self._spawn(self._run_generation(job, replica), job.id)
        for replica in decided.offload:
            with contextlib.suppress(WorkerLost):
                await self.transport.offload(replica)
                replica.offloaded = True
        for job, trainer in decided.trainings:
            if await self.store.claim(job.id, trainer.name):
                trainer.job_id = job.id
                self._time(job.id, "started")
                self._spawn(self._run_training(job, trainer), job.id)
        self._enforce_pauses()
        await self._announce_positions()

    async def _readable(self, kind: JobKind) -> list[Job]:
        """Queued jobs of a kind whose request can be read; any other fails with why (one bad record must not
        hold up the queue: a request written by an older doppel, say)."""
        readable = []
        for job in await self.store.in_state(JobState.QUEUED, kind=kind):
            try:
                _ = job.training if kind is JobKind.TRAIN else job.picture_request
            except (TypeError, KeyError, ValueError) as exc:  # RequestError is a ValueError
                log.error("job %s has a request that cannot be read: %s", job.id, exc)
                await self._finish(job.id, JobState.FAILED, error=f"this request cannot be read ({exc}); ask again")
            else:
                readable.append(job)
        return readable

    def _enforce_pauses(self) -> None:
        """A training that has not paused in time is stopped by force; it resumes from its checkpoint."""
        limit = self.settings.generation_max_wait_s / 2
        running = {t.job_id: t for t in self.trainers if t.job_id is not None}
        for job_id in [j for j in self._pausing if j not in running]:
            self._pausing.pop(job_id)
            self._forced.discard(job_id)
        for job_id in policy.overdue(self._pausing, self._forced, time.monotonic(), limit):
            log.warning("job %s did not pause within %.1f s: stopping its worker", job_id, limit)
            self._forced.add(job_id)
            self.transport.stop_by_force(running[job_id])

    async def _recover_ray(self) -> None:
        """The local Ray is gone (its GCS or raylet died): what ran goes back to the queue, not counted as an
        attempt (no job's fault); a new local Ray is started, with backoff; workers are brought up again."""
        log.error("Ray is lost (its GCS or raylet stopped): jobs wait while a new local Ray starts")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.workers.forget_all()
        self._pausing.clear()
        self._forced.clear()
        for job in await self.store.in_state(JobState.RUNNING):
            await self._requeue(job.id, count_attempt=False)
            await self._announce(await self._job(job.id))
        for attempt in itertools.count():
            try:
                await self.transport.restart_ray()
                break
            except Exception:
                wait = RAY_RETRY_S[min(attempt, len(RAY_RETRY_S) - 1)]
                log.exception("starting a new local Ray failed; trying again in %d s", wait)
                await asyncio.sleep(wait)
        log.warning("a new local Ray is up: bringing up GPU workers, then the queue resumes")
        await self._discover()
        self._wake.set()

    async def _announce_positions(self) -> None:
        """Tell waiting jobs' subscribers their place in line, once a job has waited a moment.

        A job that starts within POSITION_DELAY_S never hears of a queue, and the whole pass
        runs at most once per POSITION_DELAY_S: during a burst of requests, answering them
        comes before telling them where they stand.
        """
        now = time.time()
        if now - self._positions_told_at < POSITION_DELAY_S:
            return
        self._positions_told_at = now
        waiting_for_gpu = not self.gpu_ready
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
                told = -place if waiting_for_gpu else place  # the sign: whether it was told there is no GPU
                if self._positions.get(job.id) != told:
                    self._positions[job.id] = told
                    update = JobUpdate(job.id, JobState.QUEUED, job.progress, position=place,
                                       waiting_for_gpu=waiting_for_gpu)
                    await self.updates.publish(update)
        for job_id in set(self._positions) - still_queued:
            del self._positions[job_id]

    def _spawn(self, coroutine: Coroutine[Any, Any, None], job_id: int | None = None) -> None:
        """Run in the background; an exception that escapes fails the job (`job_id`) with why: no job is left
        running with nobody following it."""
        task = asyncio.create_task(self._guarded(coroutine, job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coroutine: Coroutine[Any, Any, None], job_id: int | None) -> None:
        try:
            await coroutine
        except Exception as exc:
            if job_id is None:
                log.exception("a background task of the runner failed")
                return
            await self._fail_following(job_id, exc)

    async def _fail_following(self, job_id: int, exc: Exception) -> None:
        """Following a job raised: the job fails with a reason its member can read. A full disk is the
        operator's to fix, and said so at ERROR."""
        if self.transport.ray_lost():  # Ray went under it: the job waits for the new one, not counted
            log.warning("job %s lost Ray under it (%s); it waits for a new one", job_id, exc)
            await self._requeue(job_id, count_attempt=False)
            return
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            log.error("job %s failed: the disk of %s is full (%s)", job_id, self.settings.data_dir, exc)
            reason = files.DISK_FULL
        else:
            log.exception("following job %s failed", job_id, exc_info=exc)
            reason = f"the bot could not follow this job ({type(exc).__name__}: {exc})"
        try:
            await self._finish(job_id, JobState.FAILED, error=reason)
        except Exception:  # the record cannot be written either: the next start requeues the job
            log.exception("job %s could not be marked failed", job_id)

    # ---- training ---------------------------------------------------------------------------

    async def _run_training(self, job: Job, worker: Worker) -> None:
        try:
            inputs = await self.sink.training_files(
                job.id, job.params["images_dir"], job.checkpoint, job.params.get("start_from")
            )
        except (files.MissingInput, OSError) as exc:
            worker.job_id = None
            await self._finish(job.id, JobState.FAILED, error=str(exc))
            return
        try:
            started = await self.transport.start_training(worker, job.id, job.training, inputs)
        except WorkerLost:
            await self._worker_lost(job.id, worker)
            return
        if not started:  # the worker is busy with something else: try again later
            worker.job_id = None
            await self._requeue(job.id, count_attempt=False)
            self._wake.set()
            return
        await self._announce(await self._job(job.id))
        await self._follow_training(job.id, worker)

    async def _follow_training(self, job_id: int, worker: Worker) -> None:
        received = 0
        result: TrainingResult | None = None
        try:
            while True:
                try:
                    report = await self.transport.poll(worker, job_id, received, POLL_SECONDS)
                except WorkerLost:
                    await self._worker_lost(job_id, worker)
                    return
                for seq, event in report.events:
                    result = await self._on_training_event(job_id, event) or result
                    received = seq
                if report.status is RunStatus.RUNNING:
                    continue
                with contextlib.suppress(WorkerLost):
                    await self.transport.release(worker, job_id)
                if report.status is RunStatus.SUCCEEDED and result is not None:
                    await self._finish(job_id, JobState.SUCCEEDED, result=result.to_data())
                elif report.status is RunStatus.CANCELLED:
                    await self._finish(job_id, JobState.CANCELLED, error="cancelled")
                elif report.status is RunStatus.PAUSED:
                    await self._requeue(job_id, count_attempt=False)
                    await self._announce(await self._job(job_id))
                else:
                    await self._finish(job_id, JobState.FAILED, error=report.error or "the trainer gave no result")
                return
        except Exception as exc:  # a job must never be left running with nobody following it
            await self._fail_following(job_id, exc)
        finally:
            worker.job_id = None
            self._pausing.pop(job_id, None)
            self._progress.pop(job_id, None)
            self._wake.set()

    async def _on_training_event(self, job_id: int, event: Any) -> TrainingResult | None:
        progress = self._progress.get(job_id) or Progress()
        if isinstance(event, Step):
            progress = replace(progress, phase=PhaseName.TRAINING.value, step=event.step, total=event.total,
                               loss=event.loss, eta_s=event.eta_s)
        elif isinstance(event, Phase):
            progress = replace(progress, phase=event.name.value)
            if event.name is PhaseName.RESUMING:
                progress = replace(progress, resumed_from=event.step)
            elif event.name is PhaseName.CONTINUING:
                progress = replace(progress, start_step=event.step or 0)
        elif isinstance(event, CaptionsWritten):
            await self._captions_written(job_id, event)
            return None
        elif isinstance(event, CheckpointSaved | SampleTaken | TrainingDone):
            # Files: never for a job that is no longer in the record (its member was forgotten), and removed
            # again when it went while they were being written.
            if await self._forgotten(job_id):
                return None
            if isinstance(event, CheckpointSaved):
                path = await self.sink.checkpoint(job_id, event)
                if not await self._forgotten(job_id):
                    await self.store.record_checkpoint(job_id, str(path), event.step)
            elif isinstance(event, SampleTaken):
                paths = await self.sink.samples(job_id, event)
                if not await self._forgotten(job_id):
                    await self.updates.publish(
                        JobUpdate(job_id, JobState.RUNNING, progress, samples=paths), urgent=True
                    )
            else:
                done = await self.sink.training_done(job_id, event)
                return None if await self._forgotten(job_id) else done
            return None
        self._progress[job_id] = progress
        await self.updates.publish(JobUpdate(job_id, JobState.RUNNING, progress))
        return None

    async def _captions_written(self, job_id: int, event: CaptionsWritten) -> None:
        """Into the run's own copy of the photos, so a resumed attempt trains on the same captions; then to the
        bot, which gives them to the member's photos that still have none, for the member to see and edit."""
        if await self._forgotten(job_id):
            return
        job = await self._job(job_id)
        if job.params.get("snapshot"):  # never write into a folder the bot did not make for this run
            await self.sink.captions(job.params["images_dir"], event)
        if self.captions_written is not None:
            await self.captions_written(job, event.captions)

    async def _worker_lost(self, job_id: int, worker: Worker) -> None:
        """The worker died or restarted under the job: requeue it from its checkpoint, or give up."""
        worker.job_id = None
        if self.transport.ray_lost():  # not the job's fault: Ray itself went; it waits for the new one
            await self._requeue(job_id, count_attempt=False)
            return
        self.workers.lost(worker)
        job = await self._job(job_id)
        if job.state.finished:  # stopped meanwhile (refuse_pictures_of): nothing to resume
            return
        if job.cancel_requested:
            await self._finish(job_id, JobState.CANCELLED, error="cancelled")
        elif job.attempts >= self.settings.max_job_attempts:
            await self._finish(
                job_id, JobState.FAILED,
                error=f"the GPU worker stopped {job.attempts} times while running this; giving up",
            )
        else:
            await self._requeue(job_id, count_attempt=job_id not in self._forced)
            log.warning("job %s lost its worker; it resumes from step %s", job_id, job.checkpoint_step or 0)
            await self._announce(await self._job(job_id))

    # ---- pictures ---------------------------------------------------------------------------

    async def _run_generation(self, job: Job, replica: Replica) -> None:
        try:
            refusal = await self._refusal(job)
            if refusal is not None:
                await self._finish(job.id, JobState.FAILED, error=refusal)
                return
            await self._announce(job)
            request = job.picture_request
            try:
                await self._hand_over_adapters(job, request)
            except (files.MissingInput, OSError) as exc:
                await self._finish(job.id, JobState.FAILED, error=f"an adapter could not be read ({exc})")
                return
            replica.offloaded = False
            try:
                made = await self.transport.generate(replica, request, self.settings.generation_timeout_s)
            except WorkerLost:
                replica.adapters = set()
                await self._worker_lost(job.id, replica)
                return
            replica.adapters = set(made.loaded)
            now = await self.store.get(job.id)
            if now is None:  # forgotten while it was drawn: nothing is kept
                return
            if made.error:
                await self._finish(job.id, JobState.FAILED, error=made.error)
            elif now.cancel_requested:
                await self._finish(job.id, JobState.CANCELLED, error="cancelled")
            elif now.state.finished:  # refused while it was drawn (a share taken back): its pictures are not kept
                pass
            elif (refusal := await self._refusal(now)) is not None:  # consent, again, before anything is kept
                await self._finish(job.id, JobState.FAILED, error=refusal)
            else:
                saved = await self.sink.pictures(job.id, made)
                if not await self._forgotten(job.id):
                    await self._finish(job.id, JobState.SUCCEEDED, result=saved.to_data())
        finally:
            replica.job_id = None
            self._wake.set()

    async def _refusal(self, job: Job) -> str | None:
        """The consent hook's answer; a check that fails refuses (never draw someone unchecked)."""
        if self.consent is None:
            return None
        try:
            return await self.consent(job)
        except Exception:
            log.exception("checking consent for job %s failed", job.id)
            return "I could not check that everyone in it still agrees; ask again"

    async def _hand_over_adapters(self, job: Job, request: GenerateRequest) -> None:
        """Each adapter's bytes into Ray's object store, once per identity, checked against that identity."""
        for use in request.adapters:
            if self.transport.holds(use.identity):
                continue
            path = job.params["adapter_files"][use.identity]
            try:
                data = await asyncio.to_thread(Path(path).read_bytes)
            except FileNotFoundError:
                raise files.MissingInput(f"the adapter '{use.name}' is gone") from None
            if await asyncio.to_thread(adapter_identity, data) != use.identity:
                raise files.MissingInput(f"the adapter '{use.name}' has changed since this was asked for; ask again")
            await self.transport.put_adapter(use.name, use.identity, data)

    # ---- bookkeeping ------------------------------------------------------------------------

    async def _job(self, job_id: int) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise LookupError(f"job {job_id} is not in the record")
        return job

    async def _finish(
        self, job_id: int, state: JobState, *, result: dict | None = None, error: str | None = None,
    ) -> bool:
        """Whether it took effect (the job was queued or running)."""
        await self.updates.flush(job_id)  # the record keeps the last progress, not a throttled older one
        job = await self.store.get(job_id)
        names = self.followups.names(job.kind) if job else ()
        if await self.store.finish(job_id, state, result=result, error=error, followups=names):
            finished = await self._job(job_id)
            await self._tidy(finished)
            await self._announce(finished)
            if state is JobState.SUCCEEDED:  # in a task of its own: the worker is free for the next job meanwhile
                self._spawn(self.followups.run(job_id, just_succeeded=True))
            return True
        return False

    async def _requeue(self, job_id: int, *, count_attempt: bool) -> None:
        """Back to the queue, to resume from its checkpoint; a job whose cancel was asked for is cancelled
        instead (the request survives a restart in the record)."""
        job = await self._job(job_id)
        if job.cancel_requested:
            await self._finish(job_id, JobState.CANCELLED, error="cancelled")
        else:
            await self.store.requeue(job_id, count_attempt=count_attempt)

    async def _tidy(self, job: Job) -> None:
        """A training that ended keeps no copy of its photos, and, unless it succeeded, no checkpoints."""
        if job.kind is JobKind.TRAIN:
            snapshot = job.params.get("images_dir") if job.params.get("snapshot") else None
            await asyncio.to_thread(
                files.tidy_ended_training, self.sink.layout(job.id), snapshot,
                keep_checkpoints=job.state is JobState.SUCCEEDED,
            )

    async def _announce(self, job: Job) -> None:
        """Tell subscribers the job's state now; wake whoever waits for it to finish."""
        if job.state.finished:
            self._time(job.id, "finished")
            event = self._finished.pop(job.id, None)
            if event is not None:
                event.set()
        outcome = job.training_result
        samples = outcome.samples[-2:] if outcome else ()
        await self.updates.publish(
            JobUpdate(job.id, job.state, job.progress, samples=samples, error=job.error, result=outcome), urgent=True
        )

    def _time(self, job_id: int, moment: str) -> None:
        self.timings.setdefault(job_id, {}).setdefault(moment, time.monotonic())
        while len(self.timings) > TIMINGS_KEPT:
            del self.timings[next(iter(self.timings))]

    async def _record_progress(self, update: JobUpdate) -> None:
        if update.state is JobState.RUNNING and update.progress:
            await self.store.record_progress(update.job_id, update.progress)
