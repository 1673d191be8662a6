"""Forgetting a member: their jobs stopped, their rows deleted, then their files. /forget and /admin purge."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Protocol

from bot.jobs.store import JobStore
from bot.members.owner import Owner, adapter_name
from bot.members.store import MemberStore
from contract import JobState, RunLayout


class Runner(Protocol):
    async def cancel(self, job_id: int) -> JobState | None: ...
    async def forget_adapter(self, name: str) -> None: ...


async def forget_member(members: MemberStore, jobs: JobStore, runner: Runner, jobs_dir: Path,
                        owner: Owner) -> dict[str, int]:
    """Stop the member's jobs, delete their rows, then their files. Returns what was deleted."""
    for job in await jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING):
        await runner.cancel(job.id)
    job_ids = [j.id for j in await jobs.of_owner(owner, *JobState)]
    photos = len(await members.photos(owner))
    counts = await members.forget(owner)
    counts["photos"] = photos

    def remove_files() -> None:
        shutil.rmtree(members.folder(owner), ignore_errors=True)
        for job_id in job_ids:
            shutil.rmtree(RunLayout.of_job(jobs_dir, job_id).root, ignore_errors=True)

    await asyncio.to_thread(remove_files)
    await runner.forget_adapter(adapter_name(owner))
    return counts


def describe(counts: dict[str, int]) -> str:
    parts = [f"{counts.get('photos', 0)} photos", f"{counts.get('adapters', 0)} adapter",
             f"{counts.get('jobs', 0)} jobs with their checkpoints and pictures", f"{counts.get('shares', 0)} shares"]
    if counts.get("token"):
        parts.append("your trigger token")
    return ", ".join(parts)
