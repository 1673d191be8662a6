"""Who goes next: round-robin between members, oldest job first within a member."""

from __future__ import annotations

import heapq
import math
from collections import deque

from bot.jobs.models import Job
from bot.members.owner import Owner


def fair_order(queued: list[Job], last_started: dict[Owner, float]) -> list[Job]:
    """The order queued jobs will start in, if nothing else arrives.

    The member served longest ago (or never) goes first; ties go to the older
    job. So a member with ten jobs waiting cannot hold back one with one job.
    A heap keeps this O(n log n): a burst can queue hundreds of jobs.
    """
    queues: dict[Owner, deque[Job]] = {}
    for job in sorted(queued, key=lambda j: j.id):
        queues.setdefault(job.owner, deque()).append(job)
    clock = max(last_started.values(), default=0.0)
    turns = [(last_started.get(owner, -math.inf), jobs[0].id, owner) for owner, jobs in queues.items()]
    heapq.heapify(turns)
    order = []
    while turns:
        _, _, owner = heapq.heappop(turns)
        jobs = queues[owner]
        order.append(jobs.popleft())
        if jobs:
            clock += 1.0  # served now: behind everyone already waiting
            heapq.heappush(turns, (clock, jobs[0].id, owner))
    return order
