"""A worker's own folder for the members' files it holds (photos being trained on, adapters being drawn with),
and the sweep that deletes what dead workers left.

Ray kills a worker that will not step aside for pictures, and a worker can crash: neither runs a `finally` or
removes a temporary folder. What such a worker held may be photos or adapters a member has since asked to
forget, so every worker keeps them under ROOT/<its pid> and, as it starts, deletes the folders there whose
process no longer runs. Ray starts a worker again at once after a kill, so a dead worker's copies last until
its replacement is up.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(tempfile.gettempdir()) / "doppel-workers"


def own_scratch(root: Path = ROOT) -> Path:
    """This process's empty folder in `root` (private to its user), after sweeping away the dead processes'
    folders. Called once, as a worker starts: a folder already named for this pid is an earlier process's."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = root / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    swept = sweep(root)
    if swept:
        log.info("deleted what %d stopped worker(s) left in %s", len(swept), root)
    folder.mkdir(mode=0o700)
    return folder


def sweep(root: Path = ROOT) -> list[Path]:
    """Delete the folders of `root` named for a process that no longer runs; other names are not ours to touch."""
    swept = []
    for folder in root.iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder.name.isdigit() and not _runs(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            swept.append(folder)
    return swept


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
