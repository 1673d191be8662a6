"""A worker's own folder for the members' files it holds (photos being trained on, adapters being drawn with),
and the sweep that deletes what dead workers left.

Ray kills a worker that will not step aside for pictures, and a worker can crash: neither runs a `finally` or
removes a temporary folder. What such a worker held may be photos or adapters a member has since asked to
forget, so every worker keeps them under ROOT/<pid>-<start time> and deletes the folders there whose process no
longer runs: as it starts (Ray starts a killed worker again at once, so a dead one's copies last until its
replacement is up) and as a generator forgets an adapter. The start time tells a reused pid from the original.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(tempfile.gettempdir()) / "doppel-workers"
FOLDER_NAME = re.compile(r"(\d{1,10})-(\d{1,20})")  # pid, start time in clock ticks since boot


def own_scratch(root: Path = ROOT) -> Path:
    """This process's empty folder in `root`, after sweeping away the dead processes' folders. Called once per
    process, as a worker starts. Where `root` is not a private folder of this user (a link, someone else's),
    nothing in it is ours to sweep: the worker gets a folder of its own elsewhere instead."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    started = _start_time(os.getpid())
    if not _private(root) or started is None:
        log.warning("%s is not a private folder of this user, or this system has no /proc: dead workers' "
                    "folders are not swept, and this one works in a fresh temporary folder", root)
        return Path(tempfile.mkdtemp(prefix="doppel-worker-"))
    folder = root / f"{os.getpid()}-{started}"
    swept = sweep(root)
    if swept:
        log.info("deleted what %d stopped worker(s) left in %s", len(swept), root)
    folder.mkdir(mode=0o700)
    return folder


def sweep(root: Path = ROOT) -> list[Path]:
    """Delete the folders of `root` named for a process that no longer runs; other names are not ours to touch."""
    if not root.is_dir() or not _private(root):
        return []
    swept = []
    for folder in root.iterdir():
        named = FOLDER_NAME.fullmatch(folder.name)
        if named is None or folder.is_symlink() or not folder.is_dir():
            continue
        pid, started = int(named[1]), named[2]
        if _start_time(pid) == started:
            continue
        shutil.rmtree(folder, onerror=_not_deleted)
        if folder.exists():
            continue  # said above; tried again at the next sweep
        swept.append(folder)
    return swept


def _not_deleted(_function: object, path: str, failure: tuple) -> None:
    log.error("cannot delete %s: %s", path, failure[1])


def _start_time(pid: int) -> str | None:
    """When the process started (field 22 of /proc/<pid>/stat), or None when it is not running: gone, or a
    zombie whose parent has not reaped it yet."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    state, started = fields[0], fields[19]  # fields 3 and 22, counted after the command's parenthesis
    return None if state in {"Z", "X"} else started


def _private(folder: Path) -> bool:
    """A real folder (no link), this user's, that no one else may enter."""
    facts = folder.lstat()
    return stat.S_ISDIR(facts.st_mode) and facts.st_uid == os.getuid() and facts.st_mode & 0o077 == 0
