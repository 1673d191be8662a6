"""A training job's progress message: a bar, step of total, ETA, the newest sample."""

from __future__ import annotations

from bot.jobs.models import Progress
from bot.jobs.updates import JobUpdate
from contract import JobState, PhaseName

BAR_WIDTH = 20
PHASES: dict[str, str] = {  # by PhaseName, a str
    PhaseName.PLANNING: "choosing how to fit the model on the GPU",
    PhaseName.CAPTIONING: "writing captions for your photos that have none",
    PhaseName.READING: "checking your photos",
    PhaseName.LOADING: "loading the base model",
    PhaseName.CACHING: "encoding your photos",
    PhaseName.RESUMING: "picking up from the last checkpoint",
    PhaseName.CONTINUING: "loading the adapter to build on",
    PhaseName.TRAINING: "training",
    PhaseName.SAVING: "saving your adapter",
}


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else 0
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def render(token: str, update: JobUpdate) -> str:
    """The message text for a training job's update."""
    title = f"**Training the adapter for `{token}`**"
    if update.state is JobState.QUEUED:
        where = f"number {update.position} in the queue" if update.position else "in the queue"
        if update.waiting_for_gpu:
            where += " (no GPU is up right now; it starts when one joins)"
        return f"{title}\nWaiting: {where}."
    if update.state is JobState.FAILED:
        return f"{title}\n❌ Training failed: {update.error}"
    if update.state is JobState.CANCELLED:
        return f"{title}\nCancelled."
    if update.state is JobState.SUCCEEDED:
        total = update.result.steps if update.result else ""
        return f"{title}\n`{bar(1, 1)}` done: {total} steps."
    progress = update.progress or Progress()
    if progress.step is None or progress.total is None:
        return f"{title}\n{PHASES.get(progress.phase, 'starting')}…"
    step, total, start = progress.step, progress.total, progress.start_step
    done, span = step - start, max(1, total - start)
    building = f" · building on step {start}" if start else ""
    return (
        f"{title}\n`{bar(done, span)}` step {step} of {total} ({100 * done // span}%){building}"
        f" · about {duration(progress.eta_s or 0)} left · loss {progress.loss or 0:.3f}"
    )
