"""Who goes next: round-robin between members, oldest job first within a member.

The order goes round by round: each member's oldest job, the member served longest ago
(or never) first and ties to the older job; then each one's second, in the same order;
and so on. So a place in it follows from how many jobs each member has waiting and
that first round's order, without the jobs themselves (`places`).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class InLine:
    """A member with jobs of a kind waiting (the record's table queue_members)."""

    owner: Owner
    queued: int  # how many
    first_queued: int  # the oldest one's id
    last_started: float | None  # None: never served


def places(line: list[InLine], asked: Iterable[tuple[Owner, int]]) -> dict[tuple[Owner, int], int]:
    """The place (1 for the next to start) of each member's `rank`-th oldest waiting job, as `fair_order` would
    give it. `line`: every member with a job of the kind waiting, in the first round's order."""
    result = {}
    rounds: dict[int, tuple[int, dict[Owner, int]]] = {}  # rank -> jobs in the rounds before, each member's turn
    for owner, rank in asked:
        if rank not in rounds:
            in_round = [m.owner for m in line if m.queued >= rank]
            before = sum(min(m.queued, rank - 1) for m in line)
            rounds[rank] = (before, {o: turn for turn, o in enumerate(in_round)})
        before, turns = rounds[rank]
        result[owner, rank] = before + turns[owner] + 1
    return result
