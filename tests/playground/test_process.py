"""`python -m bot playground` as a process, as a newcomer runs it: quiet while idle, and gone after SIGTERM.

An idle playground for two heartbeats (the stand-in's, made short) prints no warning; SIGTERM stops it as
Ctrl-C does: no stack dump, no process of its own left, and no temporary folder (Ray's session logs, which
Ray keeps after any run, aside).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_MS = 1000
ONLINE_TIMEOUT_S = 240  # Ray and the workers start on a shared, busy machine


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc (Ray's and multiprocessing's processes included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_an_idle_playground_is_quiet_and_sigterm_leaves_nothing(tiny_dir):
    temporary = Path(tempfile.mkdtemp(prefix="p", dir="/tmp"))  # short: Ray's sockets go below it too
    # LOG_LEVEL DEBUG: discord.py logs each heartbeat then
    env = {**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": str(ROOT), "LOG_LEVEL": "DEBUG"}
    command = [sys.executable, "-m", "bot", "playground", "--port", "0", "--heartbeat-ms", str(HEARTBEAT_MS)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str | None] = queue.Queue()  # None: it closed its output
    printed: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def wait_for(pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            printed.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{''.join(printed)}")

    try:
        wait_for("online in the playground", ONLINE_TIMEOUT_S)
        processes = descendants(process.pid)
        assert processes  # Ray's, at least: what must be gone after the stop
        for _ in range(3):  # the stand-in's heartbeats: the second one's answer has come by the third
            wait_for("Keeping shard ID", 10 * HEARTBEAT_MS / 1000)
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)  # the rest of what it printed
    while not lines.empty():
        printed.append(lines.get() or "")
    output = "".join(printed)
    assert status == 0, output[-5000:]
    assert not re.search(r"\sWARNING\s", output), "\n".join(re.findall(r".*\sWARNING\s.*", output))
    assert "SIGTERM received" not in output, output
    left = {pid for pid in processes if alive(pid)}
    deadline = time.monotonic() + 10  # Ray's processes end as their parent goes
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {pid for pid in left if alive(pid)}
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left if alive(pid)]
    left_behind = sorted(path.name for path in temporary.iterdir() if path.name != "ray")  # Ray's logs, as always
    shutil.rmtree(temporary)
    assert left_behind == []
