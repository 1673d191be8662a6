"""Forgetting a member: their jobs stopped, their rows deleted, then their files, then the messages showing them.

/forget and /admin purge. What goes: their photos, adapter, token, shares and jobs (with
checkpoints, samples and pictures), the pictures others made of them (rows and files), and
the messages the bot posted that show them (progress messages, announcements, pictures).
Rows go first, in one transaction; a file or a message without a row is then nobody's: the
runner removes what a job still writes after its row is gone (see JobRunner._forgotten).
A message the bot can no longer reach is named to the member, since only they can ask a
moderator to remove it; no row and no file of theirs is left either way.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.jobs.store import JobStore
from bot.members.owner import Owner, adapter_name
from bot.members.store import MemberStore
from bot.styles.store import is_style_owner
from contract import JobState, RunLayout

# (channel id, message id) -> None once the message is gone, else why it could not be deleted.
DeleteMessage = Callable[[int, int], Awaitable[str | None]]
# Told the ids of the jobs that were deleted, before their messages are: whoever edits them stops.
StopShowing = Callable[[Sequence[int]], Awaitable[None]]


class Runner(Protocol):
    async def cancel(self, job_id: int) -> JobState | None: ...
    async def forget_adapter(self, name: str) -> None: ...
    async def refuse_pictures_of(self, person: Owner, reason: str) -> list[int]: ...
    def let_go(self, job_ids: Iterable[int]) -> None: ...


@dataclass
class Forgotten:
    """What was deleted (counts by kind), and the messages that could not be: a link and why, each."""

    counts: dict[str, int]
    left: list[str] = field(default_factory=list)


async def forget_member(members: MemberStore, jobs: JobStore, runner: Runner, jobs_dir: Path, owner: Owner, *,
                        delete_message: DeleteMessage | None = None,
                        stop_showing: StopShowing | None = None, reason: str | None = None) -> Forgotten:
    """Stop the member's jobs, delete their rows, then their files, then the messages showing them. A style is
    forgotten so too, under its own owner (`reason`: what the pictures waiting to draw it are told)."""
    reason = reason or (
        "a style it used was deleted" if is_style_owner(owner) else f"<@{owner.member_id}> asked to be forgotten")
    await runner.refuse_pictures_of(owner, reason)  # others', told why
    for job in await jobs.of_owner(owner, JobState.QUEUED, JobState.RUNNING):
        await runner.cancel(job.id)
    photos = len(await members.photos(owner))
    erased = await members.erase(owner)
    counts = erased.counts | {"photos": photos}
    runner.let_go(erased.jobs)
    if stop_showing is not None:
        await stop_showing(erased.jobs)

    def remove_files() -> None:
        shutil.rmtree(members.folder(owner), ignore_errors=True)
        for job_id in erased.jobs:
            shutil.rmtree(RunLayout.of_job(jobs_dir, job_id).root, ignore_errors=True)

    await asyncio.to_thread(remove_files)
    await runner.forget_adapter(adapter_name(owner))

    forgotten = Forgotten(counts)
    if delete_message is not None:
        deleted = 0
        for channel_id, message_id in erased.messages:
            why = await delete_message(channel_id, message_id)
            if why is None:
                deleted += 1
            else:
                where = f"https://discord.com/channels/{owner.guild_id or '@me'}/{channel_id}/{message_id}"
                forgotten.left.append(f"{where} ({why})")
        counts["messages"] = deleted
    return forgotten


def describe(forgotten: Forgotten, whom: str = "you") -> str:
    """The deleted things, as a sentence's object, then any message that is left and why. `whom`: the person
    forgotten, as the reader calls them ("you", or a mention)."""
    counts = forgotten.counts
    parts = [f"{counts.get('photos', 0)} photos", f"{counts.get('adapters', 0)} adapter",
             f"{counts.get('jobs', 0)} jobs with their checkpoints and pictures", f"{counts.get('shares', 0)} shares"]
    if counts.get("pictures"):
        parts.append(f"{counts['pictures']} picture requests of others that drew {whom}, with their pictures")
    if "messages" in counts:
        parts.append(f"{counts['messages']} messages of mine that showed {whom}")
    if counts.get("token"):
        parts.append("the trigger token")
    text = ", ".join(parts)
    if forgotten.left:
        shown = "\n".join(f"- {link}" for link in forgotten.left[:10])
        more = f"\n- and {len(forgotten.left) - 10} more" if len(forgotten.left) > 10 else ""
        text += (f".\nI could not delete {len(forgotten.left)} message(s) that showed {whom} (no record of them is "
                 f"kept now; a moderator of that server can remove them):\n{shown}{more}")
    return text
