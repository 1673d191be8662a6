"""What one dispatch pass costs as the queue grows, on a real record.

    python bench/dispatch.py [--sizes 100,1000,10000,100000]

A SQLite database made by the project's migrations is filled through the project's
own `JobStore.submit`: 1,000 members (half of them served before, so the round-robin
has a memory), jobs 30 % trainings and 70 % pictures, each member's job naming
one of their adapters. Four GPUs: three trainers and three generators busy with
running jobs of the record, one trainer and one generator idle.

dispatch_ms_N: one `JobRunner._dispatch()` with N jobs queued, the median of
several passes: the policy's snapshot, its plan, the claims of the picture and the
training it starts on the idle pair, and the queue-position announcement (each
pass is made to be one that announces). The followers a claim would spawn are not
run (no Ray here) and each claim is undone after the pass, so every pass meets the
same queue.

announce_ms_N: the announcement alone, every queued job subscribed (each picture
and training asked for in Discord is), the first time (every position is told);
announce_stop_ms_N: the longest the event loop waited for a turn meanwhile.
position_ms_N: `JobRunner.position()` of the newest queued job.
The last line holds the figures as key=value.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MEMBERS = 1_000
GUILD = 1
PASSES = 7
GPUS = 4


def _request(kind, member: int, n: int):
    from contract import AdapterRef, GenerateRequest, JobKind, TrainRequest

    if kind is JobKind.TRAIN:
        return TrainRequest(base="tiny", token=f"TOK{member}", steps=500 + n % 7)
    ref = AdapterRef(name=f"m{member}", identity=f"{member:064x}")
    return GenerateRequest(base="tiny", prompt=f"a portrait, number {n}", adapters=(ref,), count=2)


async def _fill(store, start: int, count: int) -> None:
    from bot.jobs.models import JobNotes
    from bot.members.owner import Owner
    from contract import JobKind

    for n in range(start, start + count):
        member = (n * 7919) % MEMBERS  # spread over the members, not in member order
        kind = JobKind.TRAIN if n % 10 < 3 else JobKind.GENERATE
        notes = (JobNotes(images_dir=f"/nowhere/{member}") if kind is JobKind.TRAIN
                 else JobNotes(adapter_files={f"m{member}": f"/nowhere/{member}.safetensors"}, people=(member,)))
        await store.submit(kind, Owner(GUILD, member), _request(kind, member, n), notes, max_active=10**9)


async def _history(store) -> None:
    """Half the members have had jobs of each kind started before: the round-robin's memory."""
    from bot.jobs.models import JobNotes
    from bot.members.owner import Owner
    from contract import JobKind, JobState

    for member in range(0, MEMBERS, 2):
        for kind in JobKind:
            notes = JobNotes(images_dir="/nowhere") if kind is JobKind.TRAIN else JobNotes()
            job = await store.submit(kind, Owner(GUILD, member), _request(kind, member, member), notes, 10**9)
            await store.claim(job.id, "earlier")
            await store.finish(job.id, JobState.SUCCEEDED, result={})


async def _busy_workers(store, runner) -> list:
    """Four cards; three trainers and three generators run jobs of the record, one pair is idle."""
    from bot.jobs.models import JobNotes
    from bot.jobs.policy import Replica, Worker
    from bot.members.owner import Owner
    from contract import JobKind

    trainers, generators = [], []
    for gpu in range(GPUS):
        location = ("node-1", (str(gpu),))
        trainer = Worker(f"trainer-{gpu}", location=location, gpu_gib=80.0)
        generator = Replica(f"generator-{gpu}", location=location, gpu_gib=80.0, adapters={f"m{gpu}"})
        if gpu < GPUS - 1:
            for worker, kind, notes in ((trainer, JobKind.TRAIN, JobNotes(images_dir="/nowhere")),
                                        (generator, JobKind.GENERATE, JobNotes())):
                member = MEMBERS + gpu  # members of their own: their running jobs hold nobody back
                job = await store.submit(kind, Owner(GUILD, member), _request(kind, member, gpu), notes, 10**9)
                await store.claim(job.id, worker.name)
                worker.job_id = job.id
        trainers.append(trainer)
        generators.append(generator)
    runner.workers.trainers, runner.workers.generators = trainers, generators
    runner.workers.policy = "share"
    return trainers + generators


async def _one_pass(runner, workers) -> float:
    busy = {w.name: w.job_id for w in workers}
    runner.positions._told_at = 0.0  # a pass that announces, as one does each second
    started = time.perf_counter()
    await runner._dispatch()
    elapsed = time.perf_counter() - started
    for worker in workers:
        if worker.job_id != busy[worker.name]:
            await runner.store.requeue(worker.job_id, count_attempt=False)
            worker.job_id = busy[worker.name]
    return elapsed * 1000


class Stop:
    ms = 0.0


@contextlib.asynccontextmanager
async def longest_stop() -> AsyncIterator[Stop]:
    """The longest the event loop went without a turn while the block ran (a garbage collection included)."""
    stop, running = Stop(), True

    async def tick() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            stop.ms, last = max(stop.ms, (now - last) * 1000), now

    ticker = asyncio.create_task(tick())
    try:
        yield stop
    finally:
        running = False
        await ticker


async def main(sizes: list[int]) -> dict[str, float]:
    from bot.jobs.positions import POSITION_DELAY_S
    from bot.jobs.runner import JobRunner
    from bot.jobs.store import JobStore
    from bot.settings import BotSettings
    from contract import JobState

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        settings = BotSettings(data_dir=Path(scratch) / "data")
        store = await JobStore.open(Path(scratch) / "doppel.db")
        runner = JobRunner(store, settings)
        runner.spawn = lambda coroutine, job_id=None: coroutine.close()  # no Ray here: followers are not run
        await _history(store)
        workers = await _busy_workers(store, runner)
        queued = 0
        for size in sizes:
            t0 = time.perf_counter()
            await _fill(store, queued, size - queued)
            queued = size
            print(f"filled {size} queued in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            passes = [await _one_pass(runner, workers) for _ in range(PASSES)]
            figures[f"dispatch_ms_{size}"] = statistics.median(passes)

            waiting = await store.in_state(JobState.QUEUED)
            told = collections.Counter()  # counted, not kept: a follower in Discord edits a message and lets go
            for job in waiting:
                runner.subscribe(job.id, lambda update, told=told: told.update(("told",)))
            runner.positions._told.clear()
            runner.positions._told_at = 0.0
            await asyncio.sleep(POSITION_DELAY_S)  # every job has waited long enough to be told its place
            t0 = time.perf_counter()
            async with longest_stop() as stop:
                await runner.positions.announce(waiting_for_gpu=False)
            figures[f"announce_ms_{size}"] = (time.perf_counter() - t0) * 1000
            figures[f"announce_stop_ms_{size}"] = stop.ms
            for job in waiting:
                runner.updates.drop(job.id)
            t0 = time.perf_counter()
            await runner.position(max(j.id for j in waiting))
            figures[f"position_ms_{size}"] = (time.perf_counter() - t0) * 1000
            print(" ".join(f"{k}={v:.2f}" for k, v in figures.items() if k.endswith(f"_{size}")),
                  f"(told {told['told']})", flush=True)
        await store.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    arguments = parser.parse_args()
    result = asyncio.run(main([int(s) for s in arguments.sizes.split(",")]))
    print(" ".join(f"{k}={v:.2f}" for k, v in result.items()))
