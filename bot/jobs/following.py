"""A training on its worker, followed: its events become progress, files and, at the end, a result.

`progress_after` is the pure part (an event, the progress before it, the progress after);
`TrainingRun` starts the training, polls its worker, keeps what it writes, and hands the
end to the runner. Losses and failures go to the runner's rescue (bot/jobs/rescue.py).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from bot.jobs import estimates, files, recovery
from bot.jobs.models import Job, Progress, TrainingResult
from bot.jobs.policy import Worker
from bot.jobs.transport import WorkerLost
from bot.jobs.updates import JobUpdate
from contract import (
    CaptionsWritten,
    CheckpointSaved,
    JobState,
    Phase,
    PhaseName,
    RunStatus,
    SampleTaken,
    Step,
    TrainingDone,
)

if TYPE_CHECKING:
    from bot.jobs.runner import JobRunner

POLL_SECONDS = 1.0


class CaptionKeeper(Protocol):
    async def captions_written(self, job: Job, captions: dict[str, str]) -> None:
        """Give captions a training's worker wrote to the member's photos that have none."""


def progress_after(progress: Progress | None, event: Any) -> Progress:
    """The progress once `event` happened (a step, a phase; any other leaves it as it was)."""
    progress = progress or Progress()
    if isinstance(event, Step):
        return replace(progress, phase=PhaseName.TRAINING.value, step=event.step, total=event.total,
                       loss=event.loss, eta_s=event.eta_s)
    if isinstance(event, Phase):
        progress = replace(progress, phase=event.name.value)
        if event.name is PhaseName.RESUMING:
            return replace(progress, resumed_from=event.step)
        if event.name is PhaseName.CONTINUING:
            return replace(progress, start_step=event.step or 0)
    return progress


class TrainingRun:
    def __init__(self, runner: JobRunner, captions: CaptionKeeper | None):
        self.runner = runner
        self.captions = captions
        self._progress: dict[int, Progress] = {}  # the newest progress of each running training
        self._began: dict[int, float] = {}  # when each attempt was handed to its worker, until its first step

    async def run(self, job: Job, worker: Worker) -> None:
        runner = self.runner
        refusal = await runner.access_refusal(job)
        if refusal is not None:  # blocked, or their role taken away, while it waited
            worker.job_id = None
            await runner.finish(job.id, JobState.FAILED, error=refusal)
            return
        try:
            if job.notes.images_dir is None:
                raise files.MissingInput("this training does not say where its photos are; ask again")
            inputs = await runner.sink.training_files(job.id, job.notes.images_dir, job.checkpoint,
                                                      job.notes.start_from)
        except (files.MissingInput, OSError) as exc:
            worker.job_id = None
            await runner.finish(job.id, JobState.FAILED, error=str(exc))
            return
        try:
            self._began[job.id] = time.monotonic()
            started = await runner.transport.start_training(worker, job.id, job.training, inputs)
        except WorkerLost:
            await runner.rescue.worker_lost(job.id, worker)
            return
        if not started:  # the worker is busy with something else: try again later
            worker.job_id = None
            await runner.rescue.requeue(job.id, count_attempt=False)
            runner.wake.set()
            return
        await runner.announce(await runner.store.existing(job.id))
        await self.follow(job.id, worker)

    async def follow(self, job_id: int, worker: Worker) -> None:
        runner = self.runner
        received = 0
        result: TrainingResult | None = None
        try:
            while True:
                try:
                    report = await runner.transport.poll(worker, job_id, received, POLL_SECONDS)
                except WorkerLost:
                    await runner.rescue.worker_lost(job_id, worker)
                    return
                for seq, event in report.events:
                    result = await self._on_event(job_id, event) or result
                    received = seq
                if report.status is RunStatus.RUNNING:
                    continue
                with contextlib.suppress(WorkerLost):
                    await runner.transport.release(worker, job_id)
                decided = recovery.training_ended(report.status, report.error, result is not None)
                await runner.rescue.settle(job_id, decided, result=result.to_data() if result else None)
                if decided.act is recovery.Act.REQUEUE:  # it paused for pictures: its subscribers see it wait
                    await runner.announce(await runner.store.existing(job_id))
                return
        except Exception as exc:  # a job must never be left running with nobody following it
            await runner.rescue.following_failed(job_id, exc)
        finally:
            worker.job_id = None
            runner.rescue.pausing.pop(job_id, None)
            self._progress.pop(job_id, None)
            self._began.pop(job_id, None)
            runner.wake.set()

    async def _on_event(self, job_id: int, event: Any) -> TrainingResult | None:
        if isinstance(event, CaptionsWritten):
            await self._captions_written(job_id, event)
        elif isinstance(event, CheckpointSaved | SampleTaken | TrainingDone):
            return await self._keep_files(job_id, event)
        else:
            progress = progress_after(self._progress.get(job_id), event)
            if isinstance(event, Step):
                progress = self._paced(job_id, progress, event)
            self._progress[job_id] = progress
            await self.runner.updates.publish(JobUpdate(job_id, JobState.RUNNING, progress))
        return None

    def _paced(self, job_id: int, progress: Progress, event: Step) -> Progress:
        """The step measured into the runner's pace, and the time left from the same estimate /queue uses."""
        pace = self.runner.pace
        began = self._began.pop(job_id, None)
        if began is not None:  # the attempt's first step: what came before it was start-up
            pace.started_up(time.monotonic() - began - event.elapsed_s)
        pace.stepped(job_id, estimates.step_seconds(progress, event.elapsed_s))
        left = estimates.training_left(progress, event.total, pace.rates(), pace.own_step_s(job_id))
        return replace(progress, eta_s=left)

    async def _keep_files(
        self, job_id: int, event: CheckpointSaved | SampleTaken | TrainingDone,
    ) -> TrainingResult | None:
        """Never for a job that is no longer in the record (its member was forgotten), and removed again when it
        went while they were being written."""
        runner = self.runner
        if await runner.forgotten(job_id):
            return None
        if isinstance(event, CheckpointSaved):
            path = await runner.sink.checkpoint(job_id, event)
            if not await runner.forgotten(job_id):
                await runner.store.record_checkpoint(job_id, str(path), event.step)
        elif isinstance(event, SampleTaken):
            paths = await runner.sink.samples(job_id, event)
            if not await runner.forgotten(job_id):
                update = JobUpdate(job_id, JobState.RUNNING, self._progress.get(job_id) or Progress(), samples=paths)
                await runner.updates.publish(update, urgent=True)
        else:
            done = await runner.sink.training_done(job_id, event)
            return None if await runner.forgotten(job_id) else done
        return None

    async def _captions_written(self, job_id: int, event: CaptionsWritten) -> None:
        """Into the run's own copy of the photos, so a resumed attempt trains on the same captions; then to the
        bot, which gives them to the member's photos that still have none, for the member to see and edit."""
        if await self.runner.forgotten(job_id):
            return
        job = await self.runner.store.existing(job_id)
        if job.notes.snapshot and job.notes.images_dir:  # never write into a folder the bot did not make for this run
            await self.runner.sink.captions(job.notes.images_dir, event)
        if self.captions is not None:
            await self.captions.captions_written(job, event.captions)
