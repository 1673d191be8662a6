"""Who goes next: round-robin between members, oldest job first within a member."""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from bot.jobs.models import Job, Owner


def fair_order(queued: list[Job], last_started: dict[Owner, float]) -> list[Job]:
    """The order queued jobs will start in, if nothing else arrives.

    The member served longest ago (or never) goes first; ties go to the older
    job. So a member with ten jobs waiting cannot hold back one with one job.
    """
    queues: OrderedDict[Owner, deque[Job]] = OrderedDict()
    for job in sorted(queued, key=lambda j: j.id):
        queues.setdefault(job.owner, deque()).append(job)
    served = dict(last_started)
    clock = max(served.values(), default=0.0)
    order = []
    while queues:
        owner = min(queues, key=lambda o: (served.get(o, -math.inf), queues[o][0].id))
        order.append(queues[owner].popleft())
        clock += 1.0
        served[owner] = clock
        if not queues[owner]:
            del queues[owner]
    return order
