"""The estimates on their own: measured paces in, seconds out. No Ray, no database, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.jobs import estimates
from bot.jobs.estimates import Pace, Rates
from bot.jobs.models import Job, JobNotes, Progress
from bot.members.owner import Owner
from contract import GenerateRequest, JobKind, JobState, TrainRequest


def job(kind: JobKind, *, steps: int = 100, count: int = 1, progress: Progress | None = None) -> Job:
    request = (TrainRequest(base="tiny", token="ABCD12", steps=steps) if kind is JobKind.TRAIN
               else GenerateRequest(base="tiny", prompt="a cat", count=count))
    return Job(1, kind, Owner(1, 1), request, JobNotes(), JobState.QUEUED, 0, progress, None, None, None, None,
               False, None, 0.0, None, None)


def test_a_step_is_timed_over_the_steps_of_this_attempt_alone():
    assert estimates.step_seconds(Progress(step=10, total=100), 20.0) == 2.0
    # Resumed from a checkpoint at step 40: its loop made 10 steps, not 50.
    assert estimates.step_seconds(Progress(step=50, total=100, resumed_from=40), 20.0) == 2.0
    # Building on an adapter of 200 steps: the run counts on from 200.
    assert estimates.step_seconds(Progress(step=205, total=300, start_step=200), 10.0) == 2.0
    assert estimates.step_seconds(Progress(step=40, total=100, resumed_from=40), 1.0) is None
    assert estimates.step_seconds(Progress(phase="loading"), 1.0) is None


def test_a_training_left_counts_its_steps_to_go_at_its_own_pace_first():
    rates = Rates(step_s=3.0, startup_s=30.0)
    running = Progress(step=60, total=100)
    assert estimates.training_left(running, 100, rates, own_step_s=0.5) == 20.0
    assert estimates.training_left(running, 100, rates) == 120.0
    # Not stepping yet (loading the model): the start-up and every step.
    assert estimates.training_left(Progress(phase="loading"), 100, rates) == 330.0
    assert estimates.training_left(None, 10, Rates(step_s=1.0)) == 10.0
    assert estimates.training_left(running, 100, Rates()) is None


def test_pictures_and_trainings_each_take_their_time():
    rates = Rates(step_s=2.0, picture_s=5.0)
    assert estimates.job_left(job(JobKind.GENERATE, count=3), rates) == 15.0
    assert estimates.job_left(job(JobKind.TRAIN, steps=50), rates) == 100.0
    assert estimates.job_left(job(JobKind.GENERATE), Rates(step_s=2.0)) is None
    # Drawing for 10 s of its 15: 5 s to go; one running longer than the pace says ends any moment.
    assert estimates.job_left(job(JobKind.GENERATE, count=3), rates, running_s=10.0) == 5.0
    assert estimates.job_left(job(JobKind.GENERATE), rates, running_s=60.0) == 0.0


def test_waiting_jobs_take_the_worker_that_frees_first_in_their_order():
    # One worker, busy 10 s more: the first waits 10 s, the second 10 + 5.
    assert estimates.starts([10.0], [5.0, 7.0], workers=1) == [10.0, 15.0]
    # Two workers, one idle: the first starts at once, the second when the busy one frees.
    assert estimates.starts([10.0], [20.0, 1.0], workers=2) == [0.0, 10.0]
    assert estimates.starts([], [4.0, 4.0, 4.0], workers=2) == [0.0, 0.0, 4.0]


def test_an_unknown_time_leaves_the_starts_after_it_unknown():
    assert estimates.starts([None], [5.0], workers=1) == [None]
    assert estimates.starts([], [None, 5.0], workers=1) == [0.0, None]
    assert estimates.starts([None], [5.0, 5.0], workers=2) == [0.0, 5.0]  # the other worker is known
    assert estimates.starts([], [1.0], workers=0) == [None]


def test_the_pace_keeps_the_recent_measurements_and_their_middle():
    pace = Pace()
    assert pace.rates() == Rates()
    for job_id, seconds in enumerate([1.0, 2.0, 9.0], start=1):
        pace.stepped(job_id, seconds)
    pace.stepped(3, 3.0)  # a job's newest measure replaces its older one
    assert pace.rates().step_s == 2.0 and pace.own_step_s(3) == 3.0
    for job_id in range(4, 4 + estimates.KEPT):
        pace.stepped(job_id, 10.0)
    assert pace.own_step_s(1) is None and pace.rates().step_s == 10.0
    pace.pictures_made(12.0, 4)
    pace.pictures_made(-1.0, 1)  # a clock that went backwards is no measurement
    pace.started_up(30.0)
    assert replace(pace.rates(), step_s=None) == Rates(picture_s=3.0, startup_s=30.0)


@pytest.mark.parametrize("steps_done", [1, 50])
def test_the_progress_message_and_queue_agree(steps_done):
    # The progress message's time left is training_left of its own pace; /queue's is job_left of the same.
    pace = Pace()
    progress = Progress(step=steps_done, total=100)
    pace.stepped(7, estimates.step_seconds(progress, steps_done * 0.4))
    running = replace(job(JobKind.TRAIN, steps=100, progress=progress), id=7)
    left = estimates.training_left(progress, 100, pace.rates(), pace.own_step_s(7))
    assert left == estimates.job_left(running, pace.rates(), pace.own_step_s(7))
    assert left == pytest.approx(0.4 * (100 - steps_done))
