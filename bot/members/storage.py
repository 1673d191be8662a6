"""What a member's files weigh, and the housekeeping that keeps the data folder to what is still needed.

A member's disk (`MEMBER_DISK_MB`) is everything kept because of them: their folder (photos, the
snapshots of photos their queued or running trainings read, their adapter) and the folders of their
jobs (checkpoints, samples, timelines, pictures). `/dataset add` and `/train` refuse what would go over it.

Housekeeping runs at start and then daily, its file work in threads: generated pictures older than
`PICTURE_RETENTION_DAYS` are deleted, rows first, then files (a file without a row is garbage, never a
leak); so are photo snapshots no queued or running training reads (runs end by deleting theirs; this
catches a crash in between).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from bot.db import Database
from bot.jobs.store import JobStore
from bot.members.owner import Owner
from bot.members.store import MemberStore
from contract import JobKind, JobState, RunLayout

log = logging.getLogger(__name__)

MB = 2**20
DAY = 24 * 3600.0
SNAPSHOT_GRACE_S = 3600.0  # a snapshot is made a moment before its job's row: younger ones are left alone
FINISHED = (JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value)


def tree_bytes(*roots: Path) -> int:
    """The bytes of every file under `roots` (missing roots weigh nothing)."""
    total = 0
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                with contextlib.suppress(FileNotFoundError):  # deleted while we looked
                    total += Path(folder, name).lstat().st_size
    return total


async def disk_used(members: MemberStore, jobs: JobStore, jobs_dir: Path, owner: Owner) -> int:
    """The bytes the member's files take: their folder and their jobs' folders."""
    roots = [members.folder(owner)] + [RunLayout.of_job(jobs_dir, job.id).root for job in
                                       await jobs.of_owner(owner, *JobState)]
    return await asyncio.to_thread(tree_bytes, *roots)


def over_limit(used: int, adding: int, limit_mb: int) -> str | None:
    """Why `adding` bytes more do not fit the member's disk, in their words; None if they do."""
    if used + adding <= limit_mb * MB:
        return None
    return (f"your photos, trainings and pictures use {used / MB:.0f} MB of the {limit_mb} MB you may fill, "
            f"and this needs {max(1, round(adding / MB))} MB more; /dataset remove photos you do not need "
            f"(pictures are deleted after a while, and a finished training keeps one checkpoint)")


async def sweep(db: Database, data_dir: Path, jobs_dir: Path, retention_days: float,
                now: float | None = None) -> dict[str, int]:
    """Delete generated pictures older than the retention (rows, then files) and snapshots nobody reads."""
    now = time.time() if now is None else now
    rows = await db.fetchall(
        f"SELECT id FROM jobs WHERE kind = 'generate' AND state IN ({','.join('?' * len(FINISHED))}) "  # noqa: S608  (fixed fragments and ? placeholders; the values are bound)
        "AND finished_at < ?", (*FINISHED, now - retention_days * DAY),
    )
    old = [row[0] for row in rows]
    if old:
        async with db.transaction() as tx:
            for start in range(0, len(old), 500):
                chunk = old[start : start + 500]
                await tx.execute(f"DELETE FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk)  # noqa: S608  (fixed fragments and ? placeholders; the values are bound)
    in_use = {
        str(Path(job.notes.images_dir or "").resolve())
        for job in await JobStore(db).in_state(JobState.QUEUED, JobState.RUNNING, kind=JobKind.TRAIN)
    }

    def remove() -> int:
        for job_id in old:
            shutil.rmtree(RunLayout.of_job(jobs_dir, job_id).root, ignore_errors=True)
        stale = 0
        for run in Path(data_dir, "members").glob("*/*/runs/*"):
            try:
                young = run.stat().st_mtime > now - SNAPSHOT_GRACE_S
            except FileNotFoundError:
                continue
            if not young and str(run.resolve()) not in in_use:
                shutil.rmtree(run, ignore_errors=True)
                stale += 1
        return stale

    stale = await asyncio.to_thread(remove)
    return {"pictures": len(old), "snapshots": stale}


async def keep_clean(db: Database, data_dir: Path, jobs_dir: Path, retention_days: float,
                     every_s: float = DAY) -> None:
    """`sweep` now and then every `every_s`, for as long as the bot runs."""
    while True:
        try:
            swept = await sweep(db, data_dir, jobs_dir, retention_days)
            if any(swept.values()):
                log.info("housekeeping deleted %(pictures)d old picture jobs and %(snapshots)d stale snapshots",
                         swept)
        except Exception:
            log.exception("housekeeping failed; it runs again in a day")
        await asyncio.sleep(every_s)
