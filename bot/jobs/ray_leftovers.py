"""What a killed bot's local Ray leaves running, recorded as it starts and ended by the next start.

A SIGKILLed bot takes its GCS and raylet with it (Ray ties them to the thread that started them), but two of their
children live on, orphaned: `ray::DashboardAgent` and `ray::RuntimeEnvAgent`. So the bot records the processes of
each local Ray it starts in DATA_DIR/ray-processes.json, and the next start, before it starts its own, ends those
still running that it can prove were its own: the recorded PID, with the recorded start time in the same boot, and
a Ray command line (a PID reused by another program, or the same PID after a reboot, is left alone). Linux' /proc
only: elsewhere nothing is recorded, and nothing is ended.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

RECORD = "ray-processes.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
GONE_WITHIN_S = 10.0  # SIGKILL is not refused; this bounds the wait for the kernel to take them down


def record(data_dir: Path) -> list[int]:
    """Write down this process's Ray processes (its local Ray, just started); returns their PIDs."""
    if not BOOT_ID.exists():
        return []
    processes = [{"pid": pid, "started": started} for pid in descendants(os.getpid())
                 if (started := start_time(pid)) is not None and is_ray(command_line(pid))]
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = data_dir / f".{RECORD}.partial"
    partial.write_text(json.dumps({"boot": BOOT_ID.read_text().strip(), "processes": processes}))
    partial.replace(data_dir / RECORD)
    return [p["pid"] for p in processes]


def end_leftovers(data_dir: Path) -> list[int]:
    """End the recorded Ray processes still running (a previous instance's, killed); returns the PIDs ended."""
    try:
        recorded = json.loads((data_dir / RECORD).read_text())
    except (OSError, ValueError):
        return []  # none recorded (a first start, or not Linux), or unreadable: nothing can be proved
    if not BOOT_ID.exists() or recorded.get("boot") != BOOT_ID.read_text().strip():
        return []  # a reboot since: whatever runs under those PIDs now is not ours
    ours = [p["pid"] for p in recorded.get("processes", [])
            if start_time(p["pid"]) == p["started"] and is_ray(command_line(p["pid"]))]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + GONE_WITHIN_S
    while any(alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    if ours:
        log.warning("ended %d processes a previous bot's local Ray left running (PIDs %s)", len(ours),
                    " ".join(map(str, ours)))
    return ours


def is_ray(command: str) -> bool:
    """Ray's workers and agents name themselves `ray::...`; its other processes run from Ray's package."""
    return command.startswith("ray::") or f"{os.sep}ray{os.sep}" in command


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from its third field on (the second, the name in parentheses, may hold spaces)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks after boot (stat's 22nd field): with the PID, it names a process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int) -> bool:
    """Running: there, and not a zombie (an ended process whose parent has not collected it yet)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
