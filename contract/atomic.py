"""Writes that either happen whole or not at all: a crash never leaves half a file. The one way doppel
replaces a file or a folder, on both sides of the seam (no torch, no discord)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path | str, write: Callable[[Path], object], mode: int = 0o600) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place with `mode`
    (by default readable by this user only: photos, adapters and pictures are people's likenesses)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return path


def atomic_write_bytes(path: Path | str, data: bytes, mode: int = 0o600) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), mode)


def _sync_folder(folder: Path) -> None:
    """Make a rename into `folder` itself durable, where the OS allows opening a folder."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FolderNotOurs(ValueError):
    """A folder that holds what doppel did not write there: it is never replaced (nor is a file)."""


def check_replaceable(path: Path, marker: str | None = None) -> None:
    """Raise FolderNotOurs unless `path` is absent, an empty folder, or a folder with `marker` in it
    (a file doppel writes into what it builds, so that a later build may replace that build, and only that)."""
    path = Path(path)
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise FolderNotOurs(f"'{path}' is a file, not a folder: nothing was changed; name a new or empty folder")
    if not path.is_dir() or (marker and (path / marker).is_file()):
        return
    if any(path.iterdir()):
        raise FolderNotOurs(
            f"'{path}' already holds files that doppel did not write there, so it is left as it is; "
            "name a new or empty folder"
        )


@contextlib.contextmanager
def atomic_directory(path: Path, marker: str | None = None) -> Iterator[Path]:
    """Fill a staging folder beside `path`; it replaces `path` only if the block succeeds.

    What is at `path` is replaced only when `check_replaceable(path, marker)` allows it: a folder
    holding anything else (photos, say) is refused before any work starts, and again before the swap.
    """
    path = Path(path)
    check_replaceable(path, marker)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FolderNotOurs(f"cannot make the folder '{path}': {exc.strerror or exc}") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        check_replaceable(path, marker)
        old = None
        if path.exists():  # moved aside, not deleted, until the new folder is in place
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            path.rename(old / path.name)
        staging.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
