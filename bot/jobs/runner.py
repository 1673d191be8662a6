"""The job runner: takes jobs from the record, runs them on the GPU workers, writes back what happened.

It runs on the bot's event loop and only awaits. Its parts, each a module: `line` and `policy` decide what
starts and who steps aside (pure), `recovery` what becomes of a job when something went wrong under it (pure)
and `rescue` carries that out, `following` runs a training and `pictures` a picture job, `positions` tells
waiting jobs their place, `transport` talks to the Ray workers and `workers` tracks which are up, `sink` reads
a job's inputs and writes what it made, `followups` carries out what a success sets in motion. The runner
holds them together: life cycle, submit and cancel, dispatch, and each job's end in the record.

A job whose worker is lost goes back to the queue and resumes from its newest checkpoint; after
MAX_JOB_ATTEMPTS such losses it fails with a message. GPU nodes may come and go (a cluster that scales
from zero): jobs wait, and say so, while no GPU worker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from bot.jobs import recovery
from bot.jobs.estimates import Pace
from bot.jobs.following import CaptionKeeper, TrainingRun
from bot.jobs.followups import RETRY_S, FollowUps
from bot.jobs.line import Line
from bot.jobs.models import Job, JobNotes, Reply, Request
from bot.jobs.pictures import ConsentCheck, PictureRun
from bot.jobs.policy import Replica, Worker
from bot.jobs.positions import QueuePositions
from bot.jobs.recovery import Act
from bot.jobs.rescue import Rescue
from bot.jobs.sink import ArtifactSink
from bot.jobs.store import JobStore
from bot.jobs.transport import RayTransport, WorkerLost
from bot.jobs.updates import JobUpdate, Subscriber, Updates
from bot.jobs.waiting import Waiting
from bot.jobs.workers import WorkerPool
from bot.members.owner import Owner
from bot.settings import BotSettings
from contract import GenerateRequest, JobKind, JobState, TrainRequest

log = logging.getLogger(__name__)

COALESCE_S = 0.05
PASS_EVERY_S = 1.0  # a dispatch pass at least this often, woken or not (pauses come due, workers return)
TIMINGS_KEPT = 10_000


class AccessCheck(Protocol):
    async def refusal(self, job: Job) -> str | None:
        """None: the job's owner may still have it done (not blocked, the roles it needs); else why not."""


class JobRunner:
    def __init__(
        self, store: JobStore, settings: BotSettings, transport: RayTransport | None = None, *,
        consent: ConsentCheck | None = None, captions: CaptionKeeper | None = None, access: AccessCheck | None = None,
    ):
        """`consent`: whether a picture job may still use the adapters it names (their people's consent), asked
        as it starts and before its pictures are kept. `captions`: given the captions a training's worker wrote.
        `access`: whether its owner may still have a job done, asked as it starts."""
        self.store = store
        self.settings = settings
        self.access = access
        self.transport = transport or RayTransport(settings)
        self.sink = ArtifactSink(settings.jobs_dir)
        self.followups = FollowUps(store)
        self.updates = Updates(settings.progress_interval_s, on_flush=self._record_progress)
        self.wake = asyncio.Event()
        self.workers = WorkerPool(self.transport, settings, on_change=self.wake.set)
        self.rescue = Rescue(self)
        self.training = TrainingRun(self, captions)
        self.pictures = PictureRun(self, consent)
        self.positions = QueuePositions(store, self.updates)
        self.line = Line(store, self.rescue.readable)
        self.waiting = Waiting(store)
        self._tasks: set[asyncio.Task] = set()
        self._followups_tried_at = time.monotonic()
        self._loop_task: asyncio.Task | None = None
        self._recovering: asyncio.Task | None = None  # a new local Ray being started in place of a lost one
        self.timings: dict[int, dict[str, float]] = {}  # job id -> submitted, started, finished (monotonic)
        self.pace = Pace()  # recent step and picture times, for estimates (bot/jobs/estimates.py)

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Join Ray, find the workers, reconcile the record with them, finish follow-ups, then dispatch."""
        await self.transport.connect()
        await self.discover()
        log.info("%d GPU(s), sharing policy %s", len(self.trainers), self.policy)
        await self.rescue.reconcile()
        await self.followups.run_pending()
        self._loop_task = asyncio.create_task(self._dispatch_loop())

    async def stop(self, *, checkpoint_within: float | None = None) -> None:
        """Stop following jobs. Training continues on its detached workers; the next start reattaches.

        `checkpoint_within` (a local Ray, which ends with the bot): running trainings are asked to pause instead,
        writing a checkpoint that the next start resumes from, and are waited for that long at most.
        Whoever still waits for a job is cancelled: the job itself stays in the record and runs after a restart.
        """
        if checkpoint_within is not None:
            await self.rescue.pause_all(checkpoint_within, self._loop_task)
        self.waiting.cancel_all()
        await self.cancel_tasks(*(t for t in (self._loop_task, self._recovering) if t is not None))
        await self.workers.stop()

    async def cancel_tasks(self, *others: asyncio.Task) -> None:
        """Every job's follower (and `others`), cancelled and waited for."""
        tasks = [*self._tasks, *others]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

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

    # ---- what the bot calls -----------------------------------------------------------------

    async def submit_training(
        self, owner: Owner, request: TrainRequest, *, images_dir: Path | str, start_from: Path | str | None = None,
        snapshot: bool = False, requested_by: int | None = None,
    ) -> Job:
        """Queue a training of the photos (and captions) in `images_dir`, building on `start_from` if given.

        `snapshot`: `images_dir` is a copy made for this run alone, deleted when the run ends. Any other
        folder is left as it is: the runner deletes nothing it was not told it may. `requested_by`: a style's.
        """
        notes = JobNotes(images_dir=str(images_dir), start_from=str(start_from) if start_from else None,
                         snapshot=snapshot, requested_by=requested_by)
        return await self._submit(JobKind.TRAIN, owner, request, notes)

    async def submit_generation(
        self, owner: Owner, request: GenerateRequest, adapter_files: Mapping[str, Path | str], *,
        people: Iterable[int] = (), styles: Iterable[int] = (), plain: bool = False, channel_id: int | None = None,
        reply: Reply | None = None, reference_files: Mapping[str, Path | str] | None = None,
    ) -> Job:
        """Queue pictures. `adapter_files`: where each adapter's bytes are, by identity (checked when read);
        `people`: the member drawn with each person's adapter, in order, then those drawn from photos alone;
        `styles`: each style adapter's style (its owner's member id), in order; `reference_files`: where each
        reference photo is, by identity. The rest: where to show it (bot/exts/imagine)."""
        notes = JobNotes(adapter_files={k: str(v) for k, v in adapter_files.items()}, people=tuple(people),
                         styles=tuple(styles), plain=plain, channel_id=channel_id, reply=reply,
                         reference_files={k: str(v) for k, v in (reference_files or {}).items()})
        return await self._submit(JobKind.GENERATE, owner, request, notes)

    async def _submit(self, kind: JobKind, owner: Owner, request: Request, notes: JobNotes) -> Job:
        job = await self.store.submit(kind, owner, request, notes, self.settings.max_active_jobs_per_member)
        self._time(job.id, "submitted")
        self.wake.set()
        return job

    async def cancel(self, job_id: int) -> JobState | None:
        """Cancel a queued job at once; ask a running one to stop at its next step."""
        state = await self.store.request_cancel(job_id)
        if state is JobState.CANCELLED:
            await self.sink.tidy(await self.store.existing(job_id))
            await self.announce(await self.store.existing(job_id))
        elif state is JobState.RUNNING:
            worker = next((t for t in self.trainers if t.job_id == job_id), None)
            decided = recovery.cancel_running(on_trainer=worker is not None,
                                              followed=any(g.job_id == job_id for g in self.generators))
            if worker is not None and decided.stop:
                with contextlib.suppress(WorkerLost):
                    await self.transport.cancel(worker, job_id)
            elif decided.act is Act.CANCEL:
                await self.rescue.settle(job_id, decided)
                return (await self.store.existing(job_id)).state
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
            if await self.finish(job.id, JobState.FAILED, error=reason):
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
            self.positions.drop(job_id)
            self.waiting.wake(job_id)

    async def forgotten(self, job_id: int) -> bool:
        """Whether the job is gone from the record; if so, its run folder goes too (call it after writing)."""
        if await self.store.get(job_id) is not None:
            return False
        await self.sink.remove(job_id)
        return True

    async def access_refusal(self, job: Job) -> str | None:
        """Why the job's owner may not have it done now (asked as it starts); None: it goes ahead."""
        return None if self.access is None else await self.access.refusal(job)

    async def position(self, job_id: int) -> int | None:
        """1 for the next job of its kind to start; None when it is not queued."""
        return await self.positions.of(job_id)

    def subscribe(self, job_id: int, subscriber: Subscriber):
        """Call `subscriber(JobUpdate)` as the job moves; returns a function that unsubscribes."""
        return self.updates.subscribe(job_id, subscriber)

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it has finished (succeeded, failed or cancelled)."""
        return await self.waiting.wait(job_id, timeout)

    # ---- dispatching ------------------------------------------------------------------------

    async def discover(self) -> None:
        await self.workers.discover(demand=await self.store.any_queued())

    async def _dispatch_loop(self) -> None:
        while True:
            await asyncio.sleep(COALESCE_S)  # a burst of submissions makes one pass, not one each
            self.wake.clear()
            try:
                if self._recovering is None and self.transport.ray_lost():
                    self._recovering = asyncio.create_task(self.rescue.recover_ray())
                if self._recovering is not None:  # jobs wait, and say the GPU workers are unavailable
                    if not self._recovering.done():
                        await self.positions.announce(waiting_for_gpu=not self.gpu_ready)
                        continue
                    self._recovering = None
                if self.workers.due:
                    await self.discover()
                await self._dispatch()
                if time.monotonic() - self._followups_tried_at > RETRY_S:
                    self._followups_tried_at = time.monotonic()
                    self.spawn(self.followups.run_pending())
            except Exception:
                log.exception("dispatching failed; trying again")
            finally:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), PASS_EVERY_S)

    async def _dispatch(self) -> None:
        pausing = self.rescue.pausing
        decided = await self.line.plan(
            trainers=[t for t in self.trainers if t.ready], generators=[g for g in self.generators if g.ready],
            policy_name=self.policy, pausing=set(pausing),
        )
        for trainer in decided.pause:
            if trainer.job_id is not None:
                pausing[trainer.job_id] = time.monotonic()
                with contextlib.suppress(WorkerLost):
                    await self.transport.pause(trainer, trainer.job_id)
        for job, replica in decided.generations:
            if await self._claim(job, replica):
                self.spawn(self.pictures.run(job, replica), job.id)
        for replica in decided.offload:
            with contextlib.suppress(WorkerLost):
                await self.transport.offload(replica)
                replica.offloaded = True
        for job, trainer in decided.trainings:
            if await self._claim(job, trainer):
                self.spawn(self.training.run(job, trainer), job.id)
        self.rescue.enforce_pauses()
        await self.positions.announce(waiting_for_gpu=not self.gpu_ready)

    async def _claim(self, job: Job, worker: Worker) -> bool:
        if not await self.store.claim(job.id, worker.name):
            return False
        worker.job_id = job.id
        self._time(job.id, "started")
        return True

    def spawn(self, coroutine: Coroutine[Any, Any, None], job_id: int | None = None) -> None:
        """Run in the background; an exception that escapes fails the job (`job_id`) with why: no job is left
        running with nobody following it."""
        task = asyncio.create_task(self.rescue.guarded(coroutine, job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the record -------------------------------------------------------------------------

    async def finish(
        self, job_id: int, state: JobState, *, result: dict | None = None, error: str | None = None,
    ) -> bool:
        """Whether it took effect (the job was queued or running)."""
        await self.updates.flush(job_id)  # the record keeps the last progress, not a throttled older one
        job = await self.store.get(job_id)
        names = self.followups.names(job.kind) if job else ()
        if await self.store.finish(job_id, state, result=result, error=error, followups=names):
            finished = await self.store.existing(job_id)
            await self.sink.tidy(finished)
            await self.announce(finished)
            if state is JobState.SUCCEEDED:  # in a task of its own: the worker is free for the next job meanwhile
                self.spawn(self.followups.run(job_id, just_succeeded=True))
            return True
        return False

    async def announce(self, job: Job) -> None:
        """Tell subscribers the job's state now; wake whoever waits for it to finish."""
        if job.state.finished:
            self._time(job.id, "finished")
            self.waiting.wake(job.id)
            moments = self.timings.get(job.id, {})
            if job.state is JobState.SUCCEEDED and job.kind is JobKind.GENERATE and "started" in moments:
                self.pace.pictures_made(moments["finished"] - moments["started"], job.picture_request.count)
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
