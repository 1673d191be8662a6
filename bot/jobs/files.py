"""What jobs read from and write to the data folder. Blocking: the runner calls these in threads."""

from __future__ import annotations

import shutil
from pathlib import Path

from contract import RunLayout
from contract.atomic import atomic_write
from contract.limits import MAX_PHOTO_BYTES


class MissingInput(Exception):
    """Something a job needs is not in the data folder."""


DISK_FULL = "the server's disk is full"


def too_full_to_train(folder: Path, min_free_mb: int) -> str | None:
    """Why a training cannot start for the disk (its checkpoints need `min_free_mb` free), in a member's words;
    None when there is room. The operator's part is logged by the caller."""
    folder.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb >= min_free_mb:
        return None
    return (f"Not now: {DISK_FULL} (a training needs {min_free_mb} MB free for its checkpoints, there are "
            f"{free_mb:.0f}). The bot's operator has been told; try again later.")


def prune_checkpoints(layout: RunLayout, keep_step: int | None = None) -> None:
    """Delete a run's checkpoints and step adapters, but the state of `keep_step`."""
    keep = layout.checkpoint(keep_step) if keep_step is not None else None
    for path in layout.checkpoints.glob("*"):
        if path != keep and path.is_file():
            path.unlink()


def tidy_ended_training(layout: RunLayout, snapshot: str | None, keep_checkpoints: bool) -> None:
    """A training ended: the snapshot of photos made for it goes (only a queued or running run needs it), and
    so do its checkpoints and step adapters when it did not succeed (nobody can choose or resume them)."""
    if snapshot:
        shutil.rmtree(snapshot, ignore_errors=True)
    if not keep_checkpoints:
        shutil.rmtree(layout.checkpoints, ignore_errors=True)


def read_photos(folder: Path | str) -> dict[str, bytes]:
    """Photos and captions, by file name, to send to a worker."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput("your photos are gone from the data folder; add them again")
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            if path.stat().st_size > MAX_PHOTO_BYTES:
                raise MissingInput(f"{path.name} is over {MAX_PHOTO_BYTES // 2**20} MB")
            files[path.name] = path.read_bytes()
    return files


def read_start(path: str | Path) -> tuple[str, bytes]:
    """An adapter or checkpoint to build on, as a trainer takes it: its name and bytes."""
    path = Path(path)
    try:
        return path.name, path.read_bytes()
    except FileNotFoundError:
        raise MissingInput(
            "the adapter to build on is gone from the data folder; /train with fresh:True starts from zero"
        ) from None


def read_bytes(path: str | Path | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def write(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def copy(source: Path, target: Path) -> Path:
    return write(target, Path(source).read_bytes())
