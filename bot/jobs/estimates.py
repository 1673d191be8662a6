"""How long things take: the pace measured lately, and from it when a waiting job starts and a training ends.

The functions are pure (numbers in, numbers out) and are the only estimate there is: the progress
message's "about N s left" and /queue's starts both come from them. `Pace` keeps the recent
measurements (a training's seconds per step from its own step events, a picture's seconds from
the runner's start and finish times) and is all the state.

A start is estimated by letting the jobs ahead take turns on the workers of their kind: each
waiting job, in its queue's order, takes the worker that frees first. Pictures and trainings run
on workers of their own (generators and trainers), so each kind is its own line. What this leaves
out (a training pausing for pictures under GPU_SHARING=yield, one training per member at a time)
makes an estimate early, never late by more than those.
"""

from __future__ import annotations

import heapq
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.jobs.models import Job, Progress
from contract import JobKind

KEPT = 10  # recent measurements kept of each kind: the pace follows a change of GPU or model within a few jobs


@dataclass(frozen=True)
class Rates:
    """The pace as numbers: seconds per training step, per picture, and a training's start-up (loading,
    captioning, encoding the photos) before its first step. None: not measured since the bot started."""

    step_s: float | None = None
    picture_s: float | None = None
    startup_s: float | None = None


def step_seconds(progress: Progress, elapsed_s: float) -> float | None:
    """A running training's seconds per step: its training loop's time over the steps it made in this attempt
    (a resumed attempt counts from its checkpoint, a run building on an adapter from that adapter's steps)."""
    if progress.step is None:
        return None
    done = progress.step - max(progress.start_step, progress.resumed_from or 0)
    return elapsed_s / done if done > 0 else None


def training_left(progress: Progress | None, steps: int, rates: Rates, own_step_s: float | None = None) -> float | None:
    """Seconds until a training of `steps` steps ends: once it has made steps, those still to make at its own pace
    (`own_step_s`) or the recent one; before, the start-up and every step. None when nothing says how fast."""
    step_s = own_step_s or rates.step_s
    if step_s is None:
        return None
    if progress is not None and progress.step is not None and progress.total is not None:
        return step_s * max(0, progress.total - progress.step)
    return (rates.startup_s or 0) + step_s * steps


def pictures_left(count: int, rates: Rates, running_s: float = 0.0) -> float | None:
    """Seconds until a picture job of `count` pictures ends, once it has been drawing for `running_s`."""
    return None if rates.picture_s is None else max(0.0, rates.picture_s * count - running_s)


def job_left(job: Job, rates: Rates, own_step_s: float | None = None, running_s: float = 0.0) -> float | None:
    """Seconds until a job ends, by its kind: a training by its progress, a picture job by how long it has run."""
    if job.kind is JobKind.TRAIN:
        return training_left(job.progress, job.training.steps, rates, own_step_s)
    return pictures_left(job.picture_request.count, rates, running_s)


def starts(running_left: Sequence[float | None], waiting: Sequence[float | None], workers: int) -> list[float | None]:
    """Seconds until each waiting job starts, in their queue's order: `running_left` is how long each running job
    of the kind still takes, `waiting` how long each waiting one takes once started, `workers` how many run the
    kind. An unknown duration makes every start after it unknown (None); so does having no worker."""
    if workers < 1:
        return [None] * len(waiting)
    free: list[float] = [0.0] * max(0, workers - len(running_left))
    free += [left for left in running_left if left is not None]  # one whose end is unknown frees at no known time
    heapq.heapify(free)
    result: list[float | None] = []
    for duration in waiting:
        if not free:
            result.append(None)
            continue
        start = heapq.heappop(free)
        result.append(start)
        if duration is not None:
            heapq.heappush(free, start + duration)
    return result


class Pace:
    """The recent measurements, newest kept, KEPT of each kind."""

    def __init__(self) -> None:
        self._step_s: dict[int, float] = {}  # job id -> its latest seconds per step, in order of first report
        self._picture_s: deque[float] = deque(maxlen=KEPT)
        self._startup_s: deque[float] = deque(maxlen=KEPT)

    def stepped(self, job_id: int, seconds_per_step: float | None) -> None:
        if seconds_per_step is None or seconds_per_step <= 0:
            return
        self._step_s[job_id] = seconds_per_step
        while len(self._step_s) > KEPT:
            del self._step_s[next(iter(self._step_s))]

    def own_step_s(self, job_id: int) -> float | None:
        return self._step_s.get(job_id)

    def started_up(self, seconds: float) -> None:
        if seconds >= 0:
            self._startup_s.append(seconds)

    def pictures_made(self, seconds: float, count: int) -> None:
        if seconds >= 0 and count > 0:
            self._picture_s.append(seconds / count)

    def rates(self) -> Rates:
        return Rates(_median(self._step_s.values()), _median(self._picture_s), _median(self._startup_s))


def _median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None
