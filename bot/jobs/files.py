"""What jobs read from and write to the data folder. Blocking: the runner calls these in threads."""

from __future__ import annotations

from pathlib import Path

from trainer.atomic import atomic_write

MAX_PHOTO_BYTES = 30 * 2**20


class MissingInput(Exception):
    """Something a job needs is not in the data folder."""


def job_dir(jobs_dir: Path, job_id: int) -> Path:
    return jobs_dir / f"{job_id:08d}"


def state_file(out: Path, step: int) -> Path:
    """A training job's checkpoint of a step: everything needed to train on from it."""
    return out / "checkpoints" / f"step-{step:06d}.ckpt"


def step_adapter_file(out: Path, step: int) -> Path:
    """A training job's adapter as it was at a step, for its owner to choose."""
    return out / "checkpoints" / f"step-{step:06d}.safetensors"


def prune_checkpoints(out: Path, keep_step: int | None = None) -> None:
    """Delete a job's checkpoints and step adapters, but the state of `keep_step`."""
    keep = state_file(out, keep_step) if keep_step is not None else None
    for path in (out / "checkpoints").glob("*"):
        if path != keep and path.is_file():
            path.unlink()


def read_photos(folder: Path) -> dict[str, bytes]:
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


def read_start(path: str | Path) -> dict:
    """An adapter or checkpoint to build on, as a trainer takes it: its name and bytes."""
    path = Path(path)
    try:
        return {"name": path.name, "data": path.read_bytes()}
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


def adapter_version(path: Path) -> str:
    """Changes whenever the file is rewritten, so workers reload a retrained adapter."""
    stat = Path(path).stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"
