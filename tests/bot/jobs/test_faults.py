"""Faults the runner must survive: a cancel asked for before a crash, a job whose follower is gone, a full disk."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot import health, intake
from bot.jobs import files
from bot.members.owner import Owner
from contract import JobState
from tests.bot.jobs.test_runner import ANN, Watch, past_step, training
from tests.photos import scene

MB = 2**20


async def _running_job(store, kind: str, worker: str, owner: Owner = ANN, params: dict | None = None) -> int:
    """A job the record says is running on `worker`: what a bot that died under it left behind."""
    now = time.time()
    cursor = await store.db.execute(
        "INSERT INTO jobs (kind, guild_id, member_id, params, state, attempts, worker, created_at, started_at, "
        "updated_at) VALUES (?, ?, ?, ?, 'running', 1, ?, ?, ?, ?)",
        (kind, owner.guild_id, owner.member_id, json.dumps(params or {}), worker, now, now, now),
    )
    return cursor.lastrowid


@pytest.fixture
def small_disk(settings):
    """A 16 MB tmpfs as the jobs folder: a real full disk. Mounting needs root; None (with why) otherwise."""
    folder = settings.jobs_dir
    folder.mkdir(parents=True)
    if os.geteuid() != 0:
        yield None, "mounting a small tmpfs needs root; run the suite as root to test a full disk"
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        yield None, f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}"
        return
    try:
        yield folder, ""
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write until the disk says it is full."""
    for chunk in (MB, 4096):  # the last few KiB too
        with contextlib.suppress(OSError), (folder / f"filler-{chunk}").open("ab") as filler:
            while True:
                filler.write(b"\0" * chunk)
                filler.flush()
                os.fsync(filler.fileno())


async def test_cancels_survive_a_restart_and_a_full_disk_is_said_in_words(
    small_disk, make_runner, photos, settings, caplog
):
    disk, why_not = small_disk  # mounted before the runner starts: the jobs folder is on it
    runner = await make_runner(start=False)
    # /cancel was recorded, then the bot died before the trainer stopped: the next start must not resume it.
    asked = await _running_job(runner.store, "train", "gone-trainer", params={"images_dir": str(photos)})
    assert await runner.store.request_cancel(asked) is JobState.RUNNING
    await runner.start()
    cancelled = await runner.store.get(asked)
    assert cancelled.state is JobState.CANCELLED and cancelled.attempts == 1

    # A job the record says is running, that no task of this runner follows (its follower died): /cancel ends it.
    orphan = await _running_job(runner.store, "generate", "gone-generator", owner=Owner(1, 999))
    assert await runner.cancel(orphan) is JobState.CANCELLED
    assert (await runner.store.get(orphan)).state is JobState.CANCELLED

    if disk is None:
        pytest.skip(why_not)
    beat_settings = settings.model_copy(update={"data_dir": disk / "health"})
    health.beat(beat_settings)
    job = await runner.submit_training(ANN, **training(photos, steps=200, checkpoint_every=5, sample_every=0))
    watch = Watch(runner, job.id)
    await watch.until(past_step(1))
    fill(disk)

    with caplog.at_level(logging.ERROR):
        failed = await runner.wait(job.id, timeout=60)
    assert failed.state is JobState.FAILED and failed.error == files.DISK_FULL
    assert any("disk" in r.getMessage() and "full" in r.getMessage() for r in caplog.records
               if r.levelno == logging.ERROR and r.name == "bot.jobs.rescue")

    fill(disk)  # again: the failed run's checkpoints were deleted, which made room
    # The heartbeat cannot be renewed, but the last one stays whole: the check fails for staleness, not garbage.
    with pytest.raises(OSError) as full:
        health.beat(beat_settings)
    assert full.value.errno == errno.ENOSPC
    assert health.check(beat_settings) == 0 and float(beat_settings.heartbeat_file.read_text()) > 0

    # At intake and at /train the member reads that the server's disk is full.
    photo = intake.prepare(_jpeg())
    with pytest.raises(intake.Rejected) as refused:
        intake.store_photo(photo, disk / "photos")
    assert files.DISK_FULL in refused.value.reason
    assert not list((disk / "photos").rglob("*.jpg"))
    refusal = files.too_full_to_train(disk, settings.train_min_free_mb)
    assert refusal is not None and files.DISK_FULL in refusal and "operator" in refusal


def _jpeg() -> bytes:
    import io

    buffer = io.BytesIO()
    scene(3, 512, 512).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_a_worker_killed_mid_job_leaves_no_members_files_behind(local_ray):
    """Ray kills a worker that will not step aside (or it crashes), and starts it again: the new one deletes
    the folder the killed one held (a member's photos, being trained on), though no `finally` of it ran."""
    import ray

    from trainer.scratch import ROOT
    from trainer.worker import TrainerWorker

    worker = TrainerWorker.options(name="scratch-test-trainer", num_gpus=0).remote()  # type: ignore[attr-defined]
    try:
        first = ray.get(worker.where.remote(), timeout=120)["pid"]
        (own,) = ROOT.glob(f"{first}-*")
        held = own / "train-abc" / "photos"
        held.mkdir(parents=True)  # as _train writes a member's photos there
        (held / "001.jpg").write_bytes(b"a member's photo")
        os.kill(first, signal.SIGKILL)  # as Ray's own kill does, and a crash
        deadline = time.monotonic() + 120
        second = first
        while second == first and time.monotonic() < deadline:  # each call waits for the actor's answer
            with contextlib.suppress(ray.exceptions.RayActorError):  # asked as it died
                second = ray.get(worker.where.remote(), timeout=120)["pid"]
        assert second != first
        assert not own.exists()
        assert len(list(ROOT.glob(f"{second}-*"))) == 1
    finally:
        ray.kill(worker, no_restart=True)
