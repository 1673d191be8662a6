"""What becomes of a job when something went wrong under it: plain functions, no Ray, no I/O.

The runner sees what happened (a worker lost, Ray lost, a restart, a pause not taken),
asks here, and carries the answer out (bot/jobs/rescue.py). Every rule:

| what happened                                   | the job                                         |
|-------------------------------------------------|-------------------------------------------------|
| it already finished (refused meanwhile)         | nothing                                         |
| it goes back to the queue, its cancel asked for | cancelled (the request survives a restart)      |
| its worker was lost with all of Ray             | requeued, no attempt counted (not its fault)    |
| its worker was lost (died, restarted, a picture | requeued, an attempt counted; resumes from its  |
| not made within GENERATION_TIMEOUT_S)           | newest checkpoint; the worker gets no work      |
|                                                 | until it answers again                          |
| ... stopped by force for not pausing in time    | requeued, no attempt counted                    |
| ... for the MAX_JOB_ATTEMPTS-th time            | failed: "the GPU worker stopped N times ..."    |
| following it raised, Ray lost under it          | requeued, no attempt counted                    |
| following it raised: the disk is full           | failed: the disk is full (the operator's to fix)|
| following it raised, anything else              | failed: the bot could not follow it (why)       |
| a restart finds it running on its trainer       | reattached; stopped if its cancel was asked for |
| a restart finds it running, nobody holds it     | requeued, no attempt counted                    |
| a trainer holds work no job in the record owns  | that work is cancelled and released             |
| Ray was lost: every running job                 | requeued, no attempt counted                    |
| a new local Ray does not start                  | tried again after RAY_RETRY_S, then every minute|
| asked to pause, not paused within half the      | its worker stopped by force (once)              |
| pictures' GENERATION_MAX_WAIT_S                 |                                                 |
| the bot stops with its local Ray                | each training asked to pause (a checkpoint to   |
|                                                 | resume from), waited for up to STOP_GRACE_S     |
| its request cannot be read (an older doppel's)  | failed: "this request cannot be read (why)"     |
| its pictures came back with an error            | failed with the generator's words               |
| its pictures came back, its cancel asked for    | cancelled, its pictures not kept                |
| its pictures came back, it was refused meanwhile| nothing (its pictures are not kept)             |
| its training ended: succeeded with a result     | succeeded                                       |
| ... paused (it yielded the card)                | requeued, no attempt counted                    |
| ... cancelled                                   | cancelled                                       |
| ... failed, or succeeded with no result         | failed with the trainer's words                 |
| a worker is unavailable (Ray restarts it)       | waited for up to WORKER_PATIENCE_S, then lost   |
| its cancel asked for while it trains            | its trainer stops it at the next step           |
| ... while it is drawn                           | it finishes, and is not delivered               |
| ... while nobody follows it (its follower died) | cancelled at once                               |
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from bot.jobs.files import DISK_FULL
from bot.jobs.models import Job
from contract import JobKind, RunStatus

RAY_RETRY_S = (1, 2, 5, 10, 30, 60)  # waits between tries to start a new local Ray; then every minute


class Act(Enum):
    NOTHING = "nothing"
    REQUEUE = "requeue"
    SUCCEED = "succeed"
    FAIL = "fail"
    CANCEL = "cancel"
    REATTACH = "reattach"


@dataclass(frozen=True)
class Decision:
    act: Act
    count_attempt: bool = False  # REQUEUE: the loss was the job's (it counts towards MAX_JOB_ATTEMPTS)
    reason: str | None = None  # FAIL: what its member reads
    stop: bool = False  # REATTACH: its cancel was asked for while the bot was away
    operator: bool = False  # FAIL: the operator's to fix (logged at ERROR), not the job's


NOTHING = Decision(Act.NOTHING)
CANCEL = Decision(Act.CANCEL)
REQUEUE_FREE = Decision(Act.REQUEUE)  # requeued, no attempt counted


def back_to_queue(job: Job, *, count_attempt: bool) -> Decision:
    """A running job going back to the queue: cancelled instead when that was asked for."""
    if job.state.finished:
        return NOTHING
    return CANCEL if job.cancel_requested else Decision(Act.REQUEUE, count_attempt=count_attempt)


def worker_lost(job: Job, *, ray_lost: bool, forced: bool, max_attempts: int) -> Decision:
    """The worker died or restarted under the job."""
    if job.state.finished:
        return NOTHING
    if ray_lost:
        return REQUEUE_FREE
    if job.cancel_requested:
        return CANCEL
    if job.attempts >= max_attempts:
        return Decision(Act.FAIL, reason=f"the GPU worker stopped {job.attempts} times while running this; giving up")
    return Decision(Act.REQUEUE, count_attempt=not forced)


def following_failed(exc: BaseException, *, ray_lost: bool) -> Decision:
    """Following a job raised: nobody may be left following nothing."""
    if ray_lost:
        return REQUEUE_FREE
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Decision(Act.FAIL, reason=DISK_FULL, operator=True)
    return Decision(Act.FAIL, reason=f"the bot could not follow this job ({type(exc).__name__}: {exc})")


def found_running(job: Job, held_by: int | None) -> Decision:
    """A restart finds the job running in the record; `held_by`: the job its trainer holds now, if any."""
    if job.kind is JobKind.TRAIN and held_by == job.id:
        return Decision(Act.REATTACH, stop=job.cancel_requested)
    return REQUEUE_FREE


def abandoned(held: int, reattached: set[int]) -> bool:
    """Whether the job a trainer holds is followed by nobody (after a restart): its work is stopped."""
    return held not in reattached


def ray_retry_wait(attempt: int) -> float:
    return RAY_RETRY_S[min(attempt, len(RAY_RETRY_S) - 1)]


def pause_limit_s(generation_max_wait_s: float) -> float:
    """How long a training may take to pause for pictures: half of what a picture may wait."""
    return generation_max_wait_s / 2


def overdue(asked_at: Mapping[int, float], forced: set[int], now: float, limit_s: float) -> list[int]:
    """Training jobs asked to pause more than `limit_s` ago that have not, and are not yet being stopped."""
    return [job_id for job_id, at in asked_at.items() if job_id not in forced and now - at > limit_s]


def unreadable(job: Job) -> Decision | None:
    """A queued job whose request cannot be read fails with why: one bad record must not hold up the queue."""
    if job.request_problem is None:
        return None
    return Decision(Act.FAIL, reason=f"this request cannot be read ({job.request_problem}); ask again")


def training_ended(status: RunStatus, error: str | None, has_result: bool) -> Decision:
    """The trainer stopped running the job (RunStatus other than RUNNING)."""
    if status is RunStatus.SUCCEEDED and has_result:
        return Decision(Act.SUCCEED)
    if status is RunStatus.CANCELLED:
        return CANCEL
    if status is RunStatus.PAUSED:
        return REQUEUE_FREE
    return Decision(Act.FAIL, reason=error or "the trainer gave no result")


def picture_drawn(job: Job, error: str | None) -> Decision | None:
    """The generator answered for `job` (as the record has it now); None: keep its pictures, consent allowing."""
    if error:
        return Decision(Act.FAIL, reason=error)
    if job.cancel_requested:
        return CANCEL
    if job.state.finished:
        return NOTHING
    return None


def keep_waiting(waited_s: float, patience_s: float) -> bool:
    """A worker Ray is restarting is waited for, not called lost, until patience runs out."""
    return waited_s <= patience_s


def cancel_running(*, on_trainer: bool, followed: bool) -> Decision:
    """A running job's cancel was asked for. `stop`: its trainer is told to stop it."""
    if on_trainer:
        return Decision(Act.NOTHING, stop=True)
    return NOTHING if followed else CANCEL
