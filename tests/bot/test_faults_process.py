"""Faults of a real process: the bot run as `python -m bot` (its own local Ray) against the Discord stand-in,
stopped by signals as Docker and the kernel stop it.

One story, to keep the suite quick (each start brings up Ray and the tiny model):
1. A training runs; SIGTERM (what `docker stop` sends). The bot stops within its bound, the training wrote a
   checkpoint at the stop, and the database is whole in its file (the WAL checkpointed).
2. A restart resumes the training from that checkpoint; a picture is asked for meanwhile. Both succeed, and
   the bot is killed (SIGKILL) right after the successes are recorded, before anything followed them. Some of
   its local Ray's processes outlive it.
3. A copy of the data folder with the WAL removed: the bot refuses to start, and says what to do.
4. The next start ends what the killed bot's Ray left running, and carries out what the successes set in motion:
   the adapter is the member's, the announcement is posted, and the picture fills in the /imagine reply that was
   left "thinking" (or, its reply deleted meanwhile, is posted in the channel).
5. That bot's local Ray dies (its GCS and raylet killed): the bot keeps answering, starts a new Ray, and the
   picture asked for meanwhile is made without burning its attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.jobs.ray_leftovers import alive, descendants, start_time
from fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)
from tests.photos import scene

REPO = Path(__file__).resolve().parents[2]
SITE = Path(__file__).parent / "faults_site"
PNG = b"\x89PNG\r\n\x1a\n"


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class BotProcess:
    """`python -m bot` with its log lines awaitable."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.seen: dict[int, int | None] = {}  # the processes it started (its local Ray's), by pid: start time
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.write(line)
            self.log.flush()
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # the end
            self._changed.notify_all()

    async def line(self, pattern: str, timeout: float = 60) -> str:
        regex = re.compile(pattern)

        def wait() -> str:
            def found() -> str | None:
                hit = next((line for line in self.lines if regex.search(line)), None)
                if hit is None and self.lines[-1:] == [""]:
                    raise AssertionError(f"the bot exited before logging {pattern!r}; its log: {self.log.name}")
                return hit

            with self._changed:
                hit = self._changed.wait_for(found, timeout)
            if hit is None:
                raise TimeoutError(f"no log line {pattern!r} within {timeout} s; the bot's log: {self.log.name}")
            return hit

        return await asyncio.to_thread(wait)

    async def exit_code(self, timeout: float) -> int:
        return await asyncio.to_thread(self.process.wait, timeout)

    def started_processes(self) -> dict[int, int | None]:
        """The processes under the bot now (its local Ray: GCS, raylet, agents, workers), remembered."""
        self.seen |= {pid: start_time(pid) for pid in descendants(self.process.pid)}
        return self.seen

    def still_running(self) -> list[int]:
        """Of the processes it was seen to start, those still running (the same start time: not a reused pid)."""
        return [pid for pid, started in self.seen.items() if alive(pid) and start_time(pid) == started]

    def kill_all(self) -> None:
        """The bot and what it started, by pid: never anyone else's Ray."""
        self.started_processes()
        for pid in [self.process.pid, *self.still_running()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)


def jpeg(index: int) -> bytes:
    buffer = io.BytesIO()
    scene(index).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def record(data: Path) -> sqlite3.Connection:
    """The stopped bot's database, read-only (nothing is written, no WAL is made or replayed into the file)."""
    return sqlite3.connect(f"file:{data / 'doppel.sqlite3'}?mode=ro", uri=True)


@pytest.fixture
def bots(fake_discord, tmp_path, tiny_dir):
    started: list[BotProcess] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DISCORD_"))} | {
        "PYTHONPATH": os.pathsep.join([str(SITE), str(REPO)]),
        "DOPPEL_TEST_DISCORD_API": fake_discord.api_url,
        "DOPPEL_TEST_DISCORD_GATEWAY": fake_discord.gateway_url,
        "DISCORD_TOKEN": fake_discord.token,
        "RAY_NUM_GPUS": "1",
        "RAY_ACTOR_PREFIX": "faults",
        "RAY_DISABLE_USAGE_STATS": "1",
        "GPU_SHARING": "share",
        "PROGRESS_INTERVAL_S": "0.2",
        "MIN_PHOTOS_TO_TRAIN": "4",
        "MIN_PHOTO_SIDE": "64",
        "ATTACHMENT_HOSTS": f'["{urlsplit(fake_discord.base_url).netloc}"]',
        "ATTACHMENT_SCHEMES": '["http"]',
        "TRAIN_MIN_FREE_MB": "1",
        "STOP_GRACE_S": "30",
        "FACE_CHECKS": "false",
        "CAPTION_MODEL": "off",
    }

    def start(data: Path, **extra: str) -> BotProcess:
        bot = BotProcess(env | {"DATA_DIR": str(data)} | extra, tmp_path / "bot.log")
        started.append(bot)
        return bot

    yield start
    for bot in started:
        if bot.process.poll() is None or bot.still_running():
            bot.kill_all()


@pytest.mark.timeout(600)  # three starts of a bot with its own Ray: minutes on a loaded machine
async def test_stop_kill_and_a_lost_wal_lose_nothing_a_member_was_promised(fake_discord, bots, tmp_path):
    fake = fake_discord
    guild = fake.add_guild("Team")
    ann = guild.add_member("ann")
    general = guild.add_text_channel("general")
    data = tmp_path / "data"

    # 1. Training, then SIGTERM.
    bot = bots(data)
    await bot.line("connected as", timeout=120)
    photos = {name: (f"{k}.jpg", jpeg(k), "image/jpeg") for k, name in enumerate(["photo", "photo2", "photo3",
                                                                                   "photo4"])}
    added = await fake.slash(ann, general, "dataset add", options={"caption": "me"}, attachments=photos)
    await added.wait_followup(lambda m: "Ready for /train" in m.content, timeout=30)
    await fake.slash(ann, general, "train", options={"steps": 16})
    progress = await general.wait_for_message(lambda m: "Training the adapter" in m.content, timeout=30)
    await fake.wait_for_edit(progress, lambda m: re.search(r"step ([2-9]|\d\d) of 16", m.content), timeout=90)
    asked_at = time.monotonic()
    bot.process.send_signal(signal.SIGTERM)
    assert await bot.exit_code(timeout=45) == 0
    stopped_in = time.monotonic() - asked_at
    assert not (data / "doppel.sqlite3-wal").exists() and not (data / "doppel.sqlite3-open").exists()
    with record(data) as db:
        state, step, checkpoint = db.execute("SELECT state, checkpoint_step, checkpoint FROM jobs").fetchone()
    assert state == "queued" and 2 <= step < 16 and Path(checkpoint).is_file(), (state, step)

    # 2. The restart resumes from that checkpoint; a picture meanwhile; SIGKILL once both succeeded.
    bot = bots(data, DOPPEL_HOLD_FOLLOWUPS_S="600")
    await bot.line("connected as", timeout=120)
    imagine = await fake.slash(ann, general, "imagine", options={"prompt": "a lighthouse", "seed": 5})
    dismissed = await fake.slash(ann, general, "imagine", options={"prompt": "a boat", "seed": 8})
    await bot.line(r"job 2 succeeded; its follow-ups are held", timeout=90)
    await bot.line(r"job 3 succeeded; its follow-ups are held", timeout=90)
    await bot.line(r"job 1 succeeded; its follow-ups are held", timeout=120)
    killed = bot
    assert len(killed.started_processes()) >= 3  # GCS, raylet, their agents and workers
    killed.process.send_signal(signal.SIGKILL)
    await killed.exit_code(timeout=10)
    assert killed.still_running()  # orphaned: nothing ends them but the next start
    with record(data) as db:
        assert db.execute("SELECT id, state FROM jobs ORDER BY id").fetchall() == [
            (1, "succeeded"), (2, "succeeded"), (3, "succeeded")]
        assert db.execute("SELECT COUNT(*) FROM followups WHERE done_at IS NULL").fetchone()[0] == 4
        assert db.execute("SELECT COUNT(*) FROM adapters").fetchone()[0] == 0
        (resumed,) = db.execute("SELECT json_extract(progress, '$.resumed_from') FROM jobs WHERE id = 1").fetchone()
    assert resumed == step  # from the checkpoint written at the stop

    # 3. The WAL removed from a copy, as if lost while the bot was down: it refuses, and says what to do.
    lost = tmp_path / "lost"
    shutil.copytree(data, lost)
    (lost / "doppel.sqlite3-wal").unlink()
    refused = bots(lost)
    assert await refused.exit_code(timeout=60) == 3
    await refused.line(r"write-ahead log .* is gone.*restore the newest backup", timeout=5)

    # 4. The next start does what the successes set in motion. One "thinking" reply was deleted meanwhile (the
    #    bot is down, the stand-in idle): its pictures go to the channel instead, mentioning the member.
    fake.world.delete_message(dismissed._original)
    reply_gone = fake.expect_error(404, 10008)
    bot = bots(data)
    await bot.line("connected as", timeout=120)
    assert killed.still_running() == []  # ended before the new Ray started
    await bot.line(r"ended \d+ processes a previous bot's local Ray left running", timeout=5)
    announced = await general.wait_for_message(lambda m: "adapter is ready" in m.content, timeout=60)
    assert announced.attachments and announced.attachments[0].data.startswith(PNG)
    pictures = await fake.wait_for_edit(await imagine.original(timeout=30), lambda m: m.attachments, timeout=60)
    assert "a lighthouse" in pictures.content and pictures.attachments[0].data.startswith(PNG)
    posted = await general.wait_for_message(lambda m: "a boat" in m.content and m.attachments, timeout=60)
    assert posted.content.startswith(f"<@{ann.id}>") and reply_gone.seen >= 1
    with record(data) as db:
        assert db.execute("SELECT COUNT(*) FROM followups WHERE done_at IS NULL").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM adapters WHERE member_id = ?", (ann.id,)).fetchone()[0] == 1

    # 5. Its local Ray dies (only this bot's: found among its own processes): the bot answers meanwhile, a new
    #    Ray is started, and a picture asked for in between is made, its attempts not burned.
    for pid in descendants(bot.process.pid):
        if process_name(pid) in ("gcs_server", "raylet"):
            os.kill(pid, signal.SIGKILL)
    await bot.line("Ray is lost", timeout=30)
    status = await fake.slash(ann, general, "status")
    assert "Your adapter" in (await status.original(timeout=30)).content
    again = await fake.slash(ann, general, "imagine", options={"prompt": "a harbour", "seed": 6})
    await bot.line("a new local Ray is up", timeout=120)
    pictures = await fake.wait_for_edit(await again.original(timeout=30), lambda m: m.attachments, timeout=120)
    assert "a harbour" in pictures.content
    with record(data) as db:
        assert db.execute("SELECT state, attempts FROM jobs WHERE id = 4").fetchone() == ("succeeded", 1)

    bot.process.send_signal(signal.SIGTERM)
    assert await bot.exit_code(timeout=45) == 0
    assert stopped_in < 40  # STOP_GRACE_S plus the margin
