"""The front of the line: the few queued jobs a dispatch pass could start, read from the record.

A pass never needs the whole queue. Each member gets one training at a time and each idle
generator one picture, so it looks only at the fair order's first few jobs of each kind,
found through the table queue_members (bot/migrations/010_queue_members.sql) instead of
by reading and parsing every queued job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.jobs import policy
from bot.jobs.fairness import fair_order
from bot.jobs.models import Job
from bot.jobs.policy import Plan, Replica, Worker
from bot.jobs.store import JobStore
from bot.members.owner import Owner
from contract import JobKind

Readable = Callable[[list[Job]], Awaitable[list[Job]]]


class Line:
    def __init__(self, store: JobStore, readable: Readable):
        """`readable`: of some jobs, those whose request can be read (the others it settles, out of the queue)."""
        self.store = store
        self.readable = readable

    async def plan(self, *, trainers: list[Worker], generators: list[Replica], policy_name: str,
                   pausing: set[int]) -> Plan:
        """`policy.plan` on the front of the line: the plan it would make on the whole queue."""
        owners = await self.store.running_owners(JobKind.TRAIN)
        trainings, trained = await self.front(JobKind.TRAIN, len(trainers), skip=owners)
        places = sum(g.job_id is None for g in generators) + 1  # one picture per idle generator, one to wait
        while True:
            pictures, drawn = await self.front(JobKind.GENERATE, places)
            decided = policy.plan(
                pictures=pictures, trainings=trainings, last_started={"generate": drawn, "train": trained},
                training_owners=owners, trainers=trainers, generators=generators, policy=policy_name,
                pausing=pausing,
            )
            if decided.pictures_settled or len(pictures) < places:
                return decided
            places *= 4  # under `yield`, pictures wait for trainings to pause: ones further back may matter

    async def front(
        self, kind: JobKind, count: int, skip: frozenset[Owner] | set[Owner] = frozenset(),
    ) -> tuple[list[Job], dict[Owner, float]]:
        """The first `count` jobs of a kind in the fair order, leaving out members in `skip` (fewer when fewer
        wait), and when each of their members was last served: what `policy.plan` needs of the queue."""
        while True:
            line = [m for m in await self.store.in_line(kind, count + len(skip)) if m.owner not in skip][:count]
            last_started = {m.owner: m.last_started for m in line if m.last_started is not None}
            if len(line) == count:  # as many members as places: the first round fills them
                jobs = await self.store.jobs(m.first_queued for m in line)
            else:  # fewer: later rounds too, from each member's oldest few
                jobs = [job for m in line for job in await self.store.oldest_queued(m.owner, kind, count)]
            front = fair_order(jobs, last_started)[:count]
            if len(await self.readable(front)) == len(front):
                return front, last_started
            # One could not be read and has left the queue: the front is someone else's now.
