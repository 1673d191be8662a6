from bot.jobs.models import Progress
from bot.jobs.updates import JobUpdate
from bot.ui.progress import render
from contract import JobState


def test_a_run_that_builds_on_an_adapter_fills_its_bar_from_where_it_started():
    fresh = render("THGH96", JobUpdate(1, JobState.RUNNING, Progress(step=500, total=1000, eta_s=90, loss=0.1)))
    assert "step 500 of 1000 (50%)" in fresh and "building on" not in fresh
    more = render(
        "THGH96",
        JobUpdate(1, JobState.RUNNING, Progress(step=1000, total=1250, start_step=750, eta_s=90, loss=0.1)),
    )
    assert "step 1000 of 1250 (50%) · building on step 750" in more
    assert more.count("█") == fresh.count("█") == 10
    starting = render("THGH96", JobUpdate(1, JobState.RUNNING, Progress(phase="continuing")))
    assert "loading the adapter to build on" in starting


def test_a_queued_run_says_when_no_gpu_is_up():
    waiting = render("THGH96", JobUpdate(1, JobState.QUEUED, position=2, waiting_for_gpu=True))
    assert "number 2 in the queue" in waiting and "no GPU is up" in waiting
    assert "no GPU" not in render("THGH96", JobUpdate(1, JobState.QUEUED, position=2))
