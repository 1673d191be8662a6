"""A training job's progress message: a bar, step of total, ETA, the newest sample."""

from __future__ import annotations

from bot.jobs.models import JobState
from bot.jobs.updates import JobUpdate

BAR_WIDTH = 20
PHASES = {
    "planning": "choosing how to fit the model on the GPU",
    "reading": "checking your photos",
    "loading": "loading the base model",
    "caching": "encoding your photos",
    "resuming": "picking up from the last checkpoint",
    "continuing": "loading the adapter to build on",
    "training": "training",
    "saving": "saving your adapter",
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
        return f"{title}\nWaiting: {where}."
    if update.state is JobState.FAILED:
        return f"{title}\n❌ Training failed: {update.error}"
    if update.state is JobState.CANCELLED:
        return f"{title}\nCancelled."
    if update.state is JobState.SUCCEEDED:
        total = (update.result or {}).get("facts", {}).get("steps", "")
        return f"{title}\n`{bar(1, 1)}` done: {total} steps."
    progress = update.progress or {}
    if "step" not in progress:
        return f"{title}\n{PHASES.get(progress.get('phase', ''), 'starting')}…"
    step, total = progress["step"], progress["total"]
    start = progress.get("start_step", 0)  # a run building on an adapter counts on from its steps
    done, span = step - start, max(1, total - start)
    building = f" · building on step {start}" if start else ""
    return (
        f"{title}\n`{bar(done, span)}` step {step} of {total} ({100 * done // span}%){building}"
        f" · about {duration(progress.get('eta_s', 0))} left · loss {progress.get('loss', 0):.3f}"
    )
