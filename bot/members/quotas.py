"""How much one member may ask for: pictures an hour and a day, a pause between picture requests, trainings a day.

Counted from the job record (what they asked for that did not fail), so a restart forgets nothing. Each
refusal says when the member may ask again, as a Discord timestamp their client shows in their own time.
`next_allowed` is the rule, pure; `Quotas` reads the record and words the answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.jobs.store import JobStore
from bot.members.owner import Owner
from bot.settings import BotSettings
from contract import JobKind, JobState

ACTIVE = (JobState.QUEUED, JobState.RUNNING)

HOUR = 3600.0
DAY = 24 * HOUR

Use = tuple[float, int]  # when, and how much (pictures, or one training)


def next_allowed(uses: Sequence[Use], limit: int, window_s: float, wanted: int, now: float) -> float | None:
    """None when `wanted` more fit within `limit` over the `window_s` before `now`; else the moment from which
    they do (as old uses leave the window), or infinity when `wanted` alone is more than `limit`."""
    recent = sorted(use for use in uses if use[0] > now - window_s)
    used = sum(amount for _, amount in recent)
    if used + wanted <= limit:
        return None
    if wanted > limit:
        return math.inf
    for at, amount in recent:
        used -= amount
        if used + wanted <= limit:
            return at + window_s
    return now  # not reached: once every use has left the window, `wanted` fits


def sentence(reason: str) -> str:
    """A refusal's reason as a sentence of its own."""
    return f"{reason[:1].upper()}{reason[1:]}."


def when(moment: float) -> str:
    """A moment as Discord shows it to each reader: "in 5 minutes"."""
    return f"<t:{math.ceil(moment)}:R>"


@dataclass(frozen=True)
class Window:
    name: str  # "in the last hour"
    limit: int
    seconds: float


class Quotas:
    def __init__(self, jobs: JobStore, settings: BotSettings):
        self.jobs, self.settings = jobs, settings

    def picture_windows(self) -> tuple[Window, ...]:
        return (Window("in the last hour", self.settings.pictures_per_hour, HOUR),
                Window("in the last 24 hours", self.settings.pictures_per_day, DAY))

    async def picture_refusal(self, owner: Owner, count: int, now: float | None = None) -> str | None:
        """None when the member may ask for `count` pictures now; else why not and when they may."""
        now = time.time() if now is None else now
        pause = self.settings.request_cooldown_s
        last = await self.jobs.last_asked(owner, JobKind.GENERATE)
        if pause and last is not None and now - last < pause:
            return (f"please leave {pause:g} s between picture requests; you may ask again "
                    f"{when(last + pause)}")
        uses = await self.jobs.uses_since(owner, JobKind.GENERATE, now - DAY)
        for window in self.picture_windows():
            moment = next_allowed(uses, window.limit, window.seconds, count, now)
            if moment == math.inf:
                return f"at most {window.limit} pictures may be asked for {window.name}; ask for fewer"
            if moment is not None:
                used = sum(amount for at, amount in uses if at > now - window.seconds)
                return (f"you have asked for {used} of your {window.limit} pictures {window.name}; you may ask for "
                        f"{count} more {when(moment)} (/limits shows your use)")
        return None

    async def training_refusal(self, owner: Owner, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        limit = self.settings.trainings_per_day
        uses = await self.jobs.uses_since(owner, JobKind.TRAIN, now - DAY)
        moment = next_allowed(uses, limit, DAY, 1, now)
        if moment is None:
            return None
        return (f"you have started {len(uses)} trainings in the last 24 hours, the most allowed; you may train "
                f"again {when(moment)}")

    async def use(self, owner: Owner, now: float | None = None) -> list[str]:
        """The member's own use against each limit, a line each, for /limits."""
        now = time.time() if now is None else now
        pictures = await self.jobs.uses_since(owner, JobKind.GENERATE, now - DAY)
        lines = []
        for window in self.picture_windows():
            used = sum(amount for at, amount in pictures if at > now - window.seconds)
            line = f"Pictures {window.name}: {used} of {window.limit}"
            if used >= window.limit:
                line += f"; more {when(next_allowed(pictures, window.limit, window.seconds, 1, now) or now)}"
            lines.append(line)
        trainings = await self.jobs.uses_since(owner, JobKind.TRAIN, now - DAY)
        line = f"Trainings in the last 24 hours: {len(trainings)} of {self.settings.trainings_per_day}"
        if len(trainings) >= self.settings.trainings_per_day:
            line += f"; the next {when(next_allowed(trainings, self.settings.trainings_per_day, DAY, 1, now) or now)}"
        lines.append(line)
        pause = self.settings.request_cooldown_s
        last = await self.jobs.last_asked(owner, JobKind.GENERATE)
        if pause:
            ready = "" if last is None or now - last >= pause else f" (you may ask again {when(last + pause)})"
            lines.append(f"Between picture requests: {pause:g} s{ready}")
        active = await self.jobs.of_owner(owner, *ACTIVE)
        lines.append(f"Requests waiting or running: {len(active)} of {self.settings.max_active_jobs_per_member}")
        return lines
