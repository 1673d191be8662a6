"""The recovery rules on their own (bot/jobs/recovery.py): a job and what happened in, a decision out. No Ray."""

from __future__ import annotations

import errno
import itertools
from dataclasses import replace

import pytest

from bot.jobs import recovery
from bot.jobs.files import DISK_FULL
from bot.jobs.following import progress_after
from bot.jobs.models import Job, JobNotes, Progress
from bot.jobs.recovery import Act, Decision
from bot.members.owner import Owner
from contract import GenerateRequest, JobKind, JobState, Phase, PhaseName, RunStatus, Step, TrainRequest

ANN = Owner(1, 1)
_ids = itertools.count(1)


def running(kind: JobKind = JobKind.TRAIN, **changes) -> Job:
    request = TrainRequest(base="tiny", token="ABCD12") if kind is JobKind.TRAIN else GenerateRequest("tiny", "a cat")
    job = Job(next(_ids), kind, ANN, request, JobNotes(), JobState.RUNNING, 1, None, None, None, None, None, False,
              "w", 0.0, 0.0, None)
    return replace(job, **changes)


def lost(job: Job, *, ray_lost: bool = False, forced: bool = False) -> Decision:
    return recovery.worker_lost(job, ray_lost=ray_lost, forced=forced, max_attempts=3)


def test_a_lost_worker_requeues_its_job_counting_an_attempt_until_the_last():
    assert lost(running(attempts=1)) == Decision(Act.REQUEUE, count_attempt=True)
    given_up = lost(running(attempts=3))
    assert given_up == Decision(Act.FAIL, reason="the GPU worker stopped 3 times while running this; giving up")


def test_a_loss_that_is_not_the_jobs_counts_no_attempt():
    assert lost(running(attempts=3), ray_lost=True) == Decision(Act.REQUEUE, count_attempt=False)
    assert lost(running(), forced=True) == Decision(Act.REQUEUE, count_attempt=False)  # it was stopped for pictures


def test_a_lost_job_whose_cancel_was_asked_is_cancelled_and_a_finished_one_left_alone():
    assert lost(running(cancel_requested=True)).act is Act.CANCEL
    assert lost(running(state=JobState.FAILED, cancel_requested=True)).act is Act.NOTHING
    assert recovery.back_to_queue(running(cancel_requested=True), count_attempt=False).act is Act.CANCEL
    assert recovery.back_to_queue(running(), count_attempt=True) == Decision(Act.REQUEUE, count_attempt=True)
    assert recovery.back_to_queue(running(state=JobState.SUCCEEDED), count_attempt=False).act is Act.NOTHING


def test_a_follower_that_raised_fails_its_job_in_words_unless_ray_went_under_it():
    assert recovery.following_failed(RuntimeError("x"), ray_lost=True) == Decision(Act.REQUEUE)
    full = recovery.following_failed(OSError(errno.ENOSPC, "No space left on device"), ray_lost=False)
    assert (full.act, full.reason, full.operator) == (Act.FAIL, DISK_FULL, True)
    other = recovery.following_failed(KeyError("images_dir"), ray_lost=False)
    assert other.act is Act.FAIL and not other.operator
    assert other.reason == "the bot could not follow this job (KeyError: 'images_dir')"


def test_a_restart_reattaches_to_what_its_trainer_still_runs_and_requeues_the_rest():
    job = running()
    assert recovery.found_running(job, held_by=job.id) == Decision(Act.REATTACH)
    assert recovery.found_running(replace(job, cancel_requested=True), held_by=job.id).stop
    assert recovery.found_running(job, held_by=None) == Decision(Act.REQUEUE)
    assert recovery.found_running(job, held_by=job.id + 1) == Decision(Act.REQUEUE)
    picture = running(JobKind.GENERATE)  # a generator holds no job across a restart
    assert recovery.found_running(picture, held_by=picture.id) == Decision(Act.REQUEUE)
    assert recovery.abandoned(7, reattached={5}) and not recovery.abandoned(5, reattached={5})


def test_a_new_ray_is_tried_with_backoff_then_every_minute():
    assert [recovery.ray_retry_wait(n) for n in range(8)] == [1, 2, 5, 10, 30, 60, 60, 60]


def test_overdue_pauses_are_stopped_once():
    asked = {7: 100.0, 8: 109.0}
    limit = recovery.pause_limit_s(generation_max_wait_s=10)
    assert limit == 5
    assert recovery.overdue(asked, forced=set(), now=110.0, limit_s=limit) == [7]
    assert recovery.overdue(asked, forced={7}, now=110.0, limit_s=limit) == []


def test_a_request_that_cannot_be_read_fails_with_why():
    assert recovery.unreadable(running()) is None
    bad = recovery.unreadable(running(request=None, request_problem="missing base"))
    assert bad == Decision(Act.FAIL, reason="this request cannot be read (missing base); ask again")


@pytest.mark.parametrize(
    ("status", "error", "has_result", "expected"),
    [(RunStatus.SUCCEEDED, None, True, Decision(Act.SUCCEED)),
     (RunStatus.SUCCEEDED, None, False, Decision(Act.FAIL, reason="the trainer gave no result")),
     (RunStatus.PAUSED, None, False, Decision(Act.REQUEUE)),
     (RunStatus.CANCELLED, None, False, Decision(Act.CANCEL)),
     (RunStatus.FAILED, "the GPU ran out of memory", False, Decision(Act.FAIL, reason="the GPU ran out of memory"))],
)
def test_how_a_training_ended_decides_its_job(status, error, has_result, expected):
    assert recovery.training_ended(status, error, has_result) == expected


def test_drawn_pictures_are_kept_only_for_a_job_still_wanted():
    job = running(JobKind.GENERATE)
    assert recovery.picture_drawn(job, error=None) is None  # kept, consent allowing
    assert recovery.picture_drawn(job, error="no face") == Decision(Act.FAIL, reason="no face")
    assert recovery.picture_drawn(replace(job, cancel_requested=True), error=None) == Decision(Act.CANCEL)
    assert recovery.picture_drawn(replace(job, state=JobState.FAILED), error=None) == Decision(Act.NOTHING)


def test_an_unavailable_worker_is_waited_for_until_patience_runs_out():
    assert recovery.keep_waiting(59.0, patience_s=60) and not recovery.keep_waiting(60.5, patience_s=60)


def test_a_cancel_stops_a_training_lets_a_picture_finish_and_ends_what_nobody_follows():
    assert recovery.cancel_running(on_trainer=True, followed=True).stop
    assert recovery.cancel_running(on_trainer=False, followed=True) == Decision(Act.NOTHING)
    assert recovery.cancel_running(on_trainer=False, followed=False) == Decision(Act.CANCEL)


def test_progress_follows_steps_and_phases():
    resumed = progress_after(None, Phase(PhaseName.RESUMING, step=40))
    assert (resumed.phase, resumed.resumed_from) == (PhaseName.RESUMING.value, 40)
    stepped = progress_after(resumed, Step(step=41, total=100, loss=0.5, lr=1e-4, elapsed_s=1.0, eta_s=9.0))
    assert stepped == Progress(PhaseName.TRAINING.value, 41, 100, 0.5, 9.0, resumed_from=40)
    continuing = progress_after(None, Phase(PhaseName.CONTINUING, step=500))
    assert continuing.start_step == 500
    assert progress_after(stepped, object()) == stepped  # anything else leaves it as it was
