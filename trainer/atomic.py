"""Writes that either happen whole or not at all: a crash never leaves half a file."""

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
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Fill a staging folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
