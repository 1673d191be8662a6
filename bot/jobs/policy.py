"""What runs next, who steps aside, and where each waiting job stands: plain functions, no Ray, no I/O.

The runner gathers a snapshot (the front of the queue, bot/jobs/line.py, and the workers
as it last saw them), asks `plan` what to do, and carries the plan out. One pass decides:

1. Pictures first. A queued picture goes to an idle generator, preferring one that
   already holds its adapters. Under the `yield` policy, a training on the same card
   is asked to pause (checkpoint, stop) and the picture waits for the card.
2. Then training: members take turns, one training each at a time, on any free
   trainer. Under `yield`, not on a card that pictures are waiting for or using,
   and the card's generator gives its memory back first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.jobs.fairness import fair_order
from bot.jobs.models import Job
from bot.members.owner import Owner

Location = tuple[str, tuple[str, ...]]  # (node id, GPU ids): which card a worker is on


@dataclass
class Worker:
    """A GPU worker as the runner tracks it: its Ray name, its card, and the job it runs now."""

    name: str
    handle: Any = None  # the transport's handle; the policy never touches it
    location: Location = ("", ())
    gpu_gib: float | None = None
    job_id: int | None = None
    ready: bool = True  # False while it is lost: Ray is restarting it, perhaps waiting for a GPU to free up


@dataclass
class Replica(Worker):
    """A generator: also which adapters it holds (to route pictures to it) and whether it gave its memory back."""

    adapters: set[str] = field(default_factory=set)
    offloaded: bool = False


@dataclass
class Plan:
    generations: list[tuple[Job, Replica]] = field(default_factory=list)
    trainings: list[tuple[Job, Worker]] = field(default_factory=list)
    pause: list[Worker] = field(default_factory=list)  # trainers whose job should pause for pictures
    offload: list[Replica] = field(default_factory=list)  # generators to empty before a training starts
    # The pictures stopped mattering before the list ran out: more waiting behind them would change nothing.
    pictures_settled: bool = False


def sharing_policy(setting: str, gpu_sizes: Iterable[float | None], share_min_gib: float) -> str:
    """`share` or `yield`: the setting, or by the smallest card's memory when it says `auto`."""
    if setting != "auto":
        return setting
    sizes = [s for s in gpu_sizes if s is not None]
    # Logical GPUs on a CPU have no memory to fight over.
    return "share" if not sizes or min(sizes) >= share_min_gib else "yield"


def plan(
    *,
    pictures: list[Job],
    trainings: list[Job],
    last_started: dict[str, dict[Owner, float]],
    training_owners: set[Owner],
    trainers: list[Worker],
    generators: list[Replica],
    policy: str,
    pausing: set[int],
) -> Plan:
    """One dispatch pass. `pictures`/`trainings`: queued jobs; `last_started[kind]`: the round-robin's memory;
    `training_owners`: members with a training running; `pausing`: training jobs already asked to pause."""
    result = Plan()
    busy_replicas: set[str] = set()
    waiting_cards: set[Location] = set()
    for job in fair_order(pictures, last_started.get("generate", {})):
        idle = [g for g in generators if g.job_id is None and g.name not in busy_replicas]
        if not idle:
            if policy == "yield":  # under `share` a picture backlog leaves the trainers to their work
                waiting_cards.update(g.location for g in generators)
            result.pictures_settled = True
            break
        names = {a.name for a in job.picture_request.adapters}
        replica = max(idle, key=lambda g: (len(names & g.adapters), -len(g.adapters)))
        training = _training_on(trainers, replica.location)
        if policy == "yield" and training is not None:
            waiting_cards.add(replica.location)
            if training.job_id not in pausing and training not in result.pause:
                result.pause.append(training)
            if all(g.location in waiting_cards for g in idle):  # each next picture would wait here too
                result.pictures_settled = True
                break
            continue
        busy_replicas.add(replica.name)
        result.generations.append((job, replica))

    if policy == "yield":
        waiting_cards |= {r.location for _, r in result.generations}
        waiting_cards |= {g.location for g in generators if g.job_id is not None}
    owners = set(training_owners)
    taken: set[str] = set()
    for job in fair_order(trainings, last_started.get("train", {})):
        if job.owner in owners:
            continue  # one training at a time per member
        free = [t for t in trainers if t.job_id is None and t.name not in taken and t.location not in waiting_cards]
        if not free:
            break
        worker = free[0]
        if policy == "yield":
            result.offload += [g for g in generators if g.location == worker.location and not g.offloaded]
        taken.add(worker.name)
        owners.add(job.owner)
        result.trainings.append((job, worker))
    return result


def positions(queued: list[Job], last_started: dict[Owner, float]) -> dict[int, int]:
    """Each queued job's place in line among its kind, 1 for the next to start."""
    return {job.id: place for place, job in enumerate(fair_order(queued, last_started), start=1)}


def _training_on(trainers: list[Worker], location: Location) -> Worker | None:
    return next((t for t in trainers if t.location == location and t.job_id is not None), None)
