"""The job runner: takes jobs from the record, runs them on Ray, writes back what happened.

It runs on the bot's event loop and only awaits: file I/O goes to threads,
GPU work to Ray actors. One dispatch pass at a time decides what starts:

1. Pictures first. A queued generation goes to a generator replica that already
   holds its adapters if there is one. Under the `yield` policy, a training run
   on the same card is asked to pause (checkpoint, stop), and is stopped by
   force if it has not within half of GENERATION_MAX_WAIT_S.
2. Then training: members take turns, one training each at a time, on any free
   trainer. Under `yield`, not while pictures are waiting for that card.

A job whose worker dies goes back to the queue and resumes from its newest
checkpoint; after MAX_JOB_ATTEMPTS such losses it fails with a message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from bot.jobs import backend, files
from bot.jobs.fairness import fair_order
from bot.jobs.models import Job, JobKind, JobState, Owner
from bot.jobs.store import JobStore
from bot.jobs.updates import JobUpdate, Subscriber, Updates
from bot.settings import BotSettings

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
POSITION_DELAY_S = 1.0
COALESCE_S = 0.05
TRAIN_PARAMS = ("base", "token", "steps", "rank", "lr", "resolution", "seed", "checkpoint_every", "sample_every")


@dataclass
class _Yield:
    asked_at: float
    forced: bool = False


class JobRunner:
    def __init__(self, store: JobStore, settings: BotSettings):
        self.store = store
        self.settings = settings
        self.updates = Updates(settings.progress_interval_s, on_flush=self._record_progress)
        self.trainers: list[backend.Worker] = []
        self.generators: list[backend.Replica] = []
        self.policy = "share"
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._finished: dict[int, asyncio.Event] = {}
        self._yields: dict[int, _Yield] = {}  # training job id -> when it was asked to pause
        self._adapter_refs: dict[tuple[str, str], ray.ObjectRef] = {}
        self._positions: dict[int, int] = {}  # the queue position last told to subscribers
        self._progress: dict[int, dict] = {}  # the newest progress of each running training
        self._waiters: set[asyncio.Future] = set()  # callers of wait(), cancelled by stop()
        self._positions_told_at = 0.0
        self._loop_task: asyncio.Task | None = None
        self.timings: dict[int, dict[str, float]] = {}  # job id -> submitted, started, finished (monotonic)

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Join Ray, find the workers, reconcile the record with them, then start dispatching."""
        await asyncio.to_thread(backend.connect, self.settings)
        self.trainers = await asyncio.to_thread(backend.trainers, self.settings)
        self.generators = await asyncio.to_thread(backend.generators, self.settings)
        await asyncio.gather(*(backend.locate(w) for w in [*self.trainers, *self.generators]))
        self.policy = self._sharing_policy()
        await asyncio.gather(*(t.handle.configure.remote(self.policy == "yield") for t in self.trainers))
        log.info("%d GPU(s), sharing policy %s", len(self.trainers), self.policy)
        await self._reconcile()
        self._loop_task = asyncio.create_task(self._dispatch_loop())

    async def stop(self) -> None:
        """Stop following jobs. Training continues on its detached workers; the next start reattaches.

        Whoever still waits for a job is cancelled: the job itself stays in the record and runs after a restart.
        """
        for waiter in list(self._waiters):
            waiter.cancel()
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _sharing_policy(self) -> str:
        if self.settings.gpu_sharing != "auto":
            return self.settings.gpu_sharing
        sizes = [t.gpu_gib for t in self.trainers if t.gpu_gib is not None]
        # Logical GPUs on a CPU have no memory to fight over.
        return "share" if not sizes or min(sizes) >= self.settings.share_min_gpu_gib else "yield"

    async def _reconcile(self) -> None:
        """After a restart: reattach to training that is still running, requeue what was lost."""
        by_name = {t.name: t for t in self.trainers}
        reattached = set()
        for job in await self.store.in_state(JobState.RUNNING):
            worker = by_name.get(job.worker or "")
            current = await self._current(worker) if job.kind is JobKind.TRAIN and worker else None
            if current and current["job_id"] == job.id:
                worker.job_id = job.id
                reattached.add(job.id)
                self._spawn(self._follow_training(job.id, worker))
                if job.cancel_requested:
                    await worker.handle.cancel.remote(job.id)
                log.info("reattached to job %s on %s", job.id, worker.name)
            else:
                await self.store.requeue(job.id, count_attempt=False)
                log.info("requeued job %s, lost while the bot was away", job.id)
        for worker in self.trainers:  # work nobody is waiting for any more
            current = await self._current(worker)
            if current and current["job_id"] not in reattached:
                await worker.handle.cancel.remote(current["job_id"])
                await worker.handle.release.remote(current["job_id"])

    async def _current(self, worker: backend.Worker) -> dict | None:
        try:
            return await worker.handle.current.remote()
        except RayActorError:
            return None

    # ---- what the bot calls -----------------------------------------------------------------

    async def submit_training(self, owner: Owner, params: dict) -> Job:
        """params: images_dir, token, and optional TRAIN_PARAMS; `base` defaults to BASE_MODEL."""
        return await self._submit(JobKind.TRAIN, owner, params)

    async def submit_generation(self, owner: Owner, params: dict) -> Job:
        """params: prompt, count, seed, size, steps, adapters [{name, path, weight}]."""
        return await self._submit(JobKind.GENERATE, owner, params)

    async def _submit(self, kind: JobKind, owner: Owner, params: dict) -> Job:
        job = await self.store.submit(kind, owner, params, self.settings.max_active_jobs_per_member)
        self.timings[job.id] = {"submitted": time.monotonic()}
        self._wake.set()
        return job

    async def cancel(self, job_id: int) -> JobState | None:
        """Cancel a queued job at once; ask a running one to stop at its next step."""
        state = await self.store.request_cancel(job_id)
        if state is JobState.CANCELLED:
            await self._announce(await self.store.get(job_id))
        elif state is JobState.RUNNING:
            job = await self.store.get(job_id)
            worker = next((t for t in self.trainers if t.job_id == job_id), None)
            if worker is not None:
                await worker.handle.cancel.remote(job_id)
            elif job.kind is JobKind.GENERATE:
                pass  # a picture takes seconds: it finishes, and is then not delivered
        return state

    async def forget_adapter(self, name: str) -> None:
        """Remove an adapter from every generator and from Ray's object store (its owner deleted it)."""
        for key in [k for k in self._adapter_refs if k[0] == name]:
            del self._adapter_refs[key]
        for replica in self.generators:
            replica.adapters.discard(name)
            try:
                await replica.handle.forget.remote(name)
            except RayActorError:
                pass  # a restarted generator holds nothing

    async def position(self, job_id: int) -> int | None:
        """1 for the next job of its kind to start; None when it is not queued."""
        job = await self.store.get(job_id)
        if job is None or job.state is not JobState.QUEUED:
            return None
        order = fair_order(await self.store.in_state(JobState.QUEUED, kind=job.kind), await self.store.last_started(job.kind))
        return 1 + [j.id for j in order].index(job_id)

    def subscribe(self, job_id: int, subscriber: Subscriber):
        """Call `subscriber(JobUpdate)` as the job moves; returns a function that unsubscribes."""
        return self.updates.subscribe(job_id, subscriber)

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it has finished (succeeded, failed or cancelled)."""
        event = self._finished.setdefault(job_id, asyncio.Event())
        job = await self.store.get(job_id)
        if not job.state.finished:
            waiter = asyncio.ensure_future(asyncio.wait_for(event.wait(), timeout))
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)
            job = await self.store.get(job_id)
        return job

    # ---- dispatching ------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await asyncio.sleep(COALESCE_S)  # a burst of submissions makes one pass, not one each
            self._wake.clear()
            try:
                await self._dispatch()
            except Exception:
                log.exception("dispatching failed; trying again")
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except TimeoutError:
                pass

    async def _dispatch(self) -> None:
        waiting_pictures = await self._dispatch_generations()
        await self._dispatch_trainings(waiting_pictures)
        await self._enforce_yields()
        await self._announce_positions()

    async def _dispatch_generations(self) -> set[tuple]:
        """Start what pictures can start; return the cards that pictures are waiting for."""
        queued = fair_order(
            await self.store.in_state(JobState.QUEUED, kind=JobKind.GENERATE),
            await self.store.last_started(JobKind.GENERATE),
        )
        waiting = set()
        for job in queued:
            idle = [g for g in self.generators if g.job_id is None]
            if not idle:
                waiting.update(g.location for g in self.generators)
                break
            names = {a["name"] for a in job.params.get("adapters", [])}
            replica = max(idle, key=lambda g: (len(names & g.adapters), -len(g.adapters)))
            training = self._training_on(replica.location)
            if self.policy == "yield" and training is not None:
                waiting.add(replica.location)
                if training.job_id not in self._yields:
                    self._yields[training.job_id] = _Yield(time.monotonic())
                    await training.handle.pause.remote(training.job_id)
                continue
            if await self.store.claim(job.id, replica.name):
                replica.job_id = job.id
                self.timings.setdefault(job.id, {})["started"] = time.monotonic()
                self._spawn(self._run_generation(job, replica))
        return waiting

    async def _dispatch_trainings(self, waiting_pictures: set[tuple]) -> None:
        queued = fair_order(
            await self.store.in_state(JobState.QUEUED, kind=JobKind.TRAIN),
            await self.store.last_started(JobKind.TRAIN),
        )
        busy = {j.owner for j in await self.store.in_state(JobState.RUNNING, kind=JobKind.TRAIN)}
        for job in queued:
            if job.owner in busy:
                continue  # one training at a time per member
            free = [t for t in self.trainers if t.job_id is None and not self._card_taken(t.location, waiting_pictures)]
            if not free:
                return
            worker = free[0]
            if self.policy == "yield":
                for replica in self.generators:
                    if replica.location == worker.location and not replica.offloaded:
                        await replica.handle.offload.remote()
                        replica.offloaded = True
            if await self.store.claim(job.id, worker.name):
                worker.job_id = job.id
                busy.add(job.owner)
                self.timings.setdefault(job.id, {})["started"] = time.monotonic()
                self._spawn(self._run_training(job, worker))

    def _card_taken(self, location: tuple, waiting_pictures: set[tuple]) -> bool:
        """Under `yield`, a card with pictures waiting or being made is not free for training."""
        if self.policy != "yield":
            return False
        return location in waiting_pictures or any(g.location == location and g.job_id for g in self.generators)

    def _training_on(self, location: tuple) -> backend.Worker | None:
        return next((t for t in self.trainers if t.location == location and t.job_id is not None), None)

    async def _enforce_yields(self) -> None:
        """A training run that has not paused in time is stopped by force; it resumes from its checkpoint."""
        limit = self.settings.generation_max_wait_s / 2
        for job_id, request in list(self._yields.items()):
            worker = next((t for t in self.trainers if t.job_id == job_id), None)
            if worker is None:
                del self._yields[job_id]
            elif not request.forced and time.monotonic() - request.asked_at > limit:
                log.warning("job %s did not pause within %.1f s: stopping its worker", job_id, limit)
                request.forced = True
                ray.kill(worker.handle, no_restart=False)

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
        for kind in JobKind:
            queued = await self.store.in_state(JobState.QUEUED, kind=kind)
            if not any(self.updates.has_subscribers(j.id) for j in queued):
                continue
            order = fair_order(queued, await self.store.last_started(kind))
            for position, job in enumerate(order, start=1):
                if now - job.created_at < POSITION_DELAY_S:
                    continue
                if self.updates.has_subscribers(job.id) and self._positions.get(job.id) != position:
                    self._positions[job.id] = position
                    await self.updates.publish(JobUpdate(job.id, JobState.QUEUED, job.progress, position=position))

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- training ---------------------------------------------------------------------------

    async def _run_training(self, job: Job, worker: backend.Worker) -> None:
        try:
            photos = await asyncio.to_thread(files.read_photos, job.params["images_dir"])
            checkpoint = await asyncio.to_thread(files.read_bytes, job.checkpoint)
            start = None
            if job.params.get("start_from") and checkpoint is None:  # a checkpoint holds what it started from
                start = await asyncio.to_thread(files.read_start, job.params["start_from"])
        except (files.MissingInput, OSError) as exc:
            worker.job_id = None
            await self._finish(job.id, JobState.FAILED, error=str(exc))
            return
        params = {k: job.params[k] for k in TRAIN_PARAMS if k in job.params}
        params.setdefault("base", _default_base())
        try:
            started = await _patiently(worker.handle.start, job.id, params, photos, checkpoint, start)
        except RayActorError:
            await self._worker_lost(job.id, worker)
            return
        if not started:  # the worker is busy with something else: try again later
            worker.job_id = None
            await self.store.requeue(job.id, count_attempt=False)
            self._wake.set()
            return
        await self._announce(await self.store.get(job.id))
        await self._follow_training(job.id, worker)

    async def _follow_training(self, job_id: int, worker: backend.Worker) -> None:
        out = files.job_dir(self.settings.jobs_dir, job_id)
        received = 0
        lora: dict | None = None
        try:
            while True:
                try:
                    reply = await _patiently(worker.handle.poll, job_id, received, POLL_SECONDS)
                except RayActorError:
                    await self._worker_lost(job_id, worker)
                    return
                if reply is None:  # the worker restarted and no longer has the job
                    await self._worker_lost(job_id, worker)
                    return
                for event in reply["events"]:
                    lora = await self._on_training_event(job_id, out, event) or lora
                    received = event["seq"]
                if reply["status"] == "running":
                    continue
                await worker.handle.release.remote(job_id)
                status = reply["status"]
                if status == "succeeded":
                    result = {"lora": lora["path"], "facts": lora["facts"], "samples": _samples(out)}
                    steps = int(lora["facts"].get("steps", 0))
                    drawn = await asyncio.to_thread(_draw_timeline, out, steps)
                    if drawn:
                        result["timeline"] = drawn
                    result["choices"] = await asyncio.to_thread(_choices, out, steps)
                    result["state"] = str(files.state_file(out, steps))
                    await self._finish(job_id, JobState.SUCCEEDED, result=result)
                elif status == "cancelled":
                    await self._finish(job_id, JobState.CANCELLED, error="cancelled")
                elif status == "paused":
                    await self.store.requeue(job_id, count_attempt=False)
                    await self._announce(await self.store.get(job_id))
                else:
                    await self._finish(job_id, JobState.FAILED, error=reply["error"])
                return
        finally:
            worker.job_id = None
            self._yields.pop(job_id, None)
            self._progress.pop(job_id, None)
            self._wake.set()

    async def _on_training_event(self, job_id: int, out: Path, event: dict) -> dict | None:
        kind = event["type"]
        progress = self._progress.setdefault(job_id, {})
        if kind == "step":
            progress.update({"phase": "training", **{k: event[k] for k in ("step", "total", "loss", "eta_s")}})
            await self.updates.publish(JobUpdate(job_id, JobState.RUNNING, dict(progress)))
        elif kind == "phase":
            progress["phase"] = event["phase"]
            if event["phase"] == "resuming":
                progress["resumed_from"] = event["step"]
            elif event["phase"] == "continuing":
                progress["start_step"] = event["step"]
            await self.updates.publish(JobUpdate(job_id, JobState.RUNNING, dict(progress)))
        elif kind == "checkpoint":
            path = files.state_file(out, event["step"])
            await asyncio.to_thread(files.write, path, event["data"])
            if event.get("adapter"):
                await asyncio.to_thread(files.write, files.step_adapter_file(out, event["step"]), event["adapter"])
            await self.store.record_checkpoint(job_id, str(path), event["step"])
        elif kind == "sample":
            paths = [out / "samples" / f"step-{event['step']:06d}-{k}.png" for k in range(len(event["images"]))]
            for path, data in zip(paths, event["images"]):
                await asyncio.to_thread(files.write, path, data)
            update = JobUpdate(job_id, JobState.RUNNING, dict(progress), samples=tuple(map(str, paths)))
            await self.updates.publish(update, urgent=True)
        elif kind == "lora":
            path = out / "pytorch_lora_weights.safetensors"
            await asyncio.to_thread(files.write, path, event["data"])
            return {"path": str(path), "facts": event["facts"]}
        return None

    async def _worker_lost(self, job_id: int, worker: backend.Worker) -> None:
        """The worker died or restarted under the job: requeue it from its checkpoint, or give up."""
        worker.job_id = None
        job = await self.store.get(job_id)
        if job.cancel_requested:
            await self._finish(job_id, JobState.CANCELLED, error="cancelled")
        elif job.attempts >= self.settings.max_job_attempts:
            await self._finish(
                job_id,
                JobState.FAILED,
                error=f"the GPU worker stopped {job.attempts} times while running this; giving up",
            )
        else:
            forced = self._yields.get(job_id, _Yield(0)).forced
            await self.store.requeue(job_id, count_attempt=not forced)
            step = job.checkpoint_step or 0
            log.warning("job %s lost its worker; it resumes from step %s", job_id, step)
            await self._announce(await self.store.get(job_id))

    # ---- generation -------------------------------------------------------------------------

    async def _run_generation(self, job: Job, replica: backend.Replica) -> None:
        try:
            await self._announce(job)
            try:
                adapters = [await self._adapter(a) for a in job.params.get("adapters", [])]
            except (files.MissingInput, OSError) as exc:
                await self._finish(job.id, JobState.FAILED, error=f"an adapter could not be read ({exc})")
                return
            request = {k: job.params[k] for k in ("prompt", "count", "seed", "size", "steps", "compare") if k in job.params}
            replica.offloaded = False
            try:
                reply = await asyncio.wait_for(
                    replica.handle.generate.remote(request, adapters), self.settings.generation_timeout_s
                )
            except (RayActorError, TimeoutError):
                replica.adapters = set()
                await self._worker_lost(job.id, replica)
                return
            replica.adapters = set(reply["loaded"])
            if "error" in reply:
                await self._finish(job.id, JobState.FAILED, error=reply["error"])
                return
            if (await self.store.get(job.id)).cancel_requested:
                await self._finish(job.id, JobState.CANCELLED, error="cancelled")
                return
            out = files.job_dir(self.settings.jobs_dir, job.id)
            images = []
            for image in reply["images"]:
                path = out / f"seed-{image['seed']}.png"
                await asyncio.to_thread(files.write, path, image["png"])
                images.append({"seed": image["seed"], "path": str(path)})
            await self._finish(job.id, JobState.SUCCEEDED, result={"images": images})
        finally:
            replica.job_id = None
            self._wake.set()

    async def _adapter(self, use: dict) -> dict:
        """An adapter for a worker: the file's bytes put in Ray's object store once per version."""
        path = Path(use["path"])
        version = await asyncio.to_thread(files.adapter_version, path)
        key = (use["name"], version)
        if key not in self._adapter_refs:
            for old in [k for k in self._adapter_refs if k[0] == use["name"]]:
                del self._adapter_refs[old]
            data = await asyncio.to_thread(path.read_bytes)
            self._adapter_refs[key] = await asyncio.to_thread(ray.put, data)
        # Inside a list, the ref is not resolved by Ray: a worker that holds the adapter never fetches it.
        return {"name": use["name"], "version": version, "weight": use.get("weight", 1.0), "data": self._adapter_refs[key]}

    # ---- bookkeeping ------------------------------------------------------------------------

    async def _finish(self, job_id: int, state: JobState, *, result: dict | None = None, error: str | None = None):
        await self.updates.flush(job_id)  # the record keeps the last progress, not a throttled older one
        if await self.store.finish(job_id, state, result=result, error=error):
            await self._announce(await self.store.get(job_id))

    async def _announce(self, job: Job) -> None:
        """Tell subscribers the job's state now; wake whoever waits for it to finish."""
        if job.state.finished:
            self.timings.setdefault(job.id, {}).setdefault("finished", time.monotonic())
            self._finished.setdefault(job.id, asyncio.Event()).set()
        samples = tuple(job.result.get("samples", ())[-2:]) if job.result else ()
        await self.updates.publish(
            JobUpdate(job.id, job.state, job.progress, samples=samples, error=job.error, result=job.result), urgent=True
        )

    async def _record_progress(self, update: JobUpdate) -> None:
        if update.state is JobState.RUNNING and update.progress:
            await self.store.record_progress(update.job_id, update.progress)


async def _patiently(method, *args, patience_s: float = 60):
    """Call an actor method, waiting out a restart (ActorUnavailableError) rather than calling it a loss.

    A restarted actor has lost its job; the caller learns that from the answer.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return await method.remote(*args)
        except ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)  # Ray is restarting the actor


def _draw_timeline(out: Path, steps: int) -> str | None:
    """The run's samples through its steps, from every attempt's samples (a resumed run's included)."""
    from trainer.images import png_bytes
    from trainer.timeline import timeline

    picture = timeline(out / "samples", steps)
    if picture is None:
        return None
    return str(files.write(out / "timeline.png", png_bytes(picture, {})))


def _choices(out: Path, steps: int) -> list[int]:
    """The steps its owner may choose as their adapter: the timeline's columns after the first that have one."""
    from trainer.timeline import columns, sample_files

    shown = columns(sorted(sample_files(out / "samples")), steps)[1:]
    return [step for step in shown if files.step_adapter_file(out, step).is_file()]


def _samples(out: Path) -> list[str]:
    return sorted(str(p) for p in (out / "samples").glob("*.png"))


def _default_base() -> str:
    from trainer.settings import TrainerSettings

    return TrainerSettings().base_model
