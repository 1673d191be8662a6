from bot.jobs.models import JobState
from bot.jobs.updates import JobUpdate
from bot.ui.progress import render


def test_a_run_that_builds_on_an_adapter_fills_its_bar_from_where_it_started():
    fresh = render("THGH96", JobUpdate(1, JobState.RUNNING, {"step": 500, "total": 1000, "eta_s": 90, "loss": 0.1}))
    assert "step 500 of 1000 (50%)" in fresh and "building on" not in fresh
    more = render(
        "THGH96",
        JobUpdate(1, JobState.RUNNING, {"step": 1000, "total": 1250, "start_step": 750, "eta_s": 90, "loss": 0.1}),
    )
    assert "step 1000 of 1250 (50%) · building on step 750" in more
    assert more.count("█") == fresh.count("█") == 10
    starting = render("THGH96", JobUpdate(1, JobState.RUNNING, {"phase": "continuing"}))
    assert "loading the adapter to build on" in starting
