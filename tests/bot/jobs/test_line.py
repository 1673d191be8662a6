"""The front of the line against the whole queue: a real record, no Ray.

A dispatch pass and a queue position read only what bot/migrations/010_queue_members.sql keeps
per member; here they are checked against what the runner computed before from every queued
job (fair_order over all of them, the round-robin's memory grouped from the whole history).
"""

from __future__ import annotations

import random

import pytest

from bot.jobs import policy
from bot.jobs.line import Line
from bot.jobs.models import Job, JobNotes
from bot.jobs.policy import Replica, Worker
from bot.jobs.positions import IN_THREAD_FROM, QueuePositions
from bot.jobs.runner import JobRunner
from bot.jobs.store import JobStore
from bot.jobs.updates import Updates
from bot.members.owner import Owner
from bot.settings import BotSettings
from contract import AdapterRef, GenerateRequest, JobKind, JobState, TrainRequest

MEMBERS = [Owner(1, m) for m in range(1, 8)] + [Owner(2, 1)]  # the same member id in another server too
CARDS = [("node-a", ("0",)), ("node-a", ("1",)), ("node-b", ("0",))]


def request(kind: JobKind, owner: Owner, n: int):
    if kind is JobKind.TRAIN:
        return TrainRequest(base="tiny", token="ABCD12")
    return GenerateRequest(base="tiny", prompt=f"a cat {n}", adapters=(AdapterRef(f"m{owner.member_id}", "x"),))


@pytest.fixture
async def store(tmp_path):
    store = await JobStore.open(tmp_path / "jobs.sqlite3")
    yield store
    await store.close()


async def mixed_queue(store: JobStore, seed: int) -> None:
    """Jobs of both kinds queued, started, finished, requeued, cancelled and deleted, in a jumble."""
    chance = random.Random(seed)
    for n in range(120):
        owner, kind = chance.choice(MEMBERS), chance.choice([JobKind.TRAIN, JobKind.GENERATE, JobKind.GENERATE])
        job = await store.submit(kind, owner, request(kind, owner, n), JobNotes(), max_active=1000)
        roll = chance.random()
        if roll < 0.35:
            await store.claim(job.id, "earlier")
            if roll < 0.2:
                await store.finish(job.id, JobState.SUCCEEDED, result={})
            elif roll < 0.27:
                await store.requeue(job.id)  # back in the queue, its old start kept
        elif roll < 0.4:
            await store.request_cancel(job.id)
    gone = chance.choice(MEMBERS)  # forgotten: their jobs deleted, their turn with them
    await store.db.execute("DELETE FROM jobs WHERE guild_id = ? AND member_id = ? AND kind = 'train'",
                           (gone.guild_id, gone.member_id))
    await store.db.execute("DELETE FROM jobs WHERE id = (SELECT id FROM jobs WHERE kind = 'generate' "
                           "ORDER BY started_at DESC LIMIT 1)")  # someone's latest start, their others kept


async def remembered(store: JobStore, kind: JobKind) -> dict[Owner, float]:
    """The round-robin's memory as it was computed before: from every job ever started."""
    rows = await store.db.fetchall(
        "SELECT guild_id, member_id, MAX(started_at) FROM jobs WHERE kind = ? AND started_at IS NOT NULL "
        "GROUP BY guild_id, member_id", (kind.value,))
    return {Owner(g, m): t for g, m, t in rows}


async def whole_queue_plan(store: JobStore, trainers, generators, name: str, pausing: set[int]) -> policy.Plan:
    """The plan as the runner made it before: every queued job of the record."""
    running = await store.in_state(JobState.RUNNING, kind=JobKind.TRAIN)
    return policy.plan(
        pictures=await store.in_state(JobState.QUEUED, kind=JobKind.GENERATE),
        trainings=await store.in_state(JobState.QUEUED, kind=JobKind.TRAIN),
        last_started={kind.value: await remembered(store, kind) for kind in JobKind},
        training_owners={j.owner for j in running}, trainers=trainers, generators=generators, policy=name,
        pausing=pausing)


def decisions(plan: policy.Plan) -> tuple:
    return ([(j.id, r.name) for j, r in plan.generations], [(j.id, t.name) for j, t in plan.trainings],
            [t.name for t in plan.pause], [g.name for g in plan.offload])


async def every_job_readable(jobs: list[Job]) -> list[Job]:
    return jobs


@pytest.mark.parametrize(("seed", "in_thread_from"), [(1, IN_THREAD_FROM), (2, IN_THREAD_FROM), (3, 0)])
async def test_the_summary_and_positions_by_query_match_the_whole_queue(store, seed, in_thread_from):
    await mixed_queue(store, seed)
    summary = await store.db.fetchall(
        "SELECT kind, guild_id, member_id, queued, first_queued, last_started FROM queue_members WHERE queued > 0 "
        "OR last_started IS NOT NULL ORDER BY 1, 2, 3")
    recounted = await store.db.fetchall(
        "SELECT kind, guild_id, member_id, SUM(state = 'queued'), MIN(CASE WHEN state = 'queued' THEN id END), "
        "MAX(started_at) FROM jobs GROUP BY 1, 2, 3 HAVING SUM(state = 'queued') > 0 OR MAX(started_at) IS NOT NULL "
        "ORDER BY 1, 2, 3")
    assert [tuple(r) for r in summary] == [tuple(r) for r in recounted]

    positions = QueuePositions(store, Updates(1.0), in_thread_from)  # 0: worked out in a thread
    queued = await store.in_state(JobState.QUEUED)
    by_query = await positions.places(await store.queued_of(j.id for j in queued))
    before = {}
    for kind in JobKind:
        before |= policy.positions([j for j in queued if j.kind is kind], await remembered(store, kind))
    assert len(before) > 40 and by_query == before
    told: dict[int, int | None] = {}
    for job in queued:
        positions.updates.subscribe(job.id, lambda update: told.__setitem__(update.job_id, update.position))
    await store.db.execute("UPDATE jobs SET created_at = created_at - 60")  # submitted a minute ago: told
    await positions.announce(waiting_for_gpu=False)
    assert told == before  # what subscribers hear, of both kinds
    last = max(queued, key=lambda j: j.id)
    assert await positions.of(last.id) == before[last.id]
    assert await positions.of(min(j.id for j in await store.in_state(JobState.SUCCEEDED))) is None


async def test_a_pass_on_the_front_of_the_line_plans_as_on_the_whole_queue(store):
    await mixed_queue(store, 4)
    training_ids = iter(j.id for j in await store.in_state(JobState.QUEUED, kind=JobKind.TRAIN))
    running = next(training_ids), next(training_ids)
    for job_id in running:
        await store.claim(job_id, "trainer")
    line = Line(store, every_job_readable)

    def card_workers(trainer_jobs=(), generator_jobs=(), held=()):
        trainers = [Worker(f"t{i}", location=c, job_id=dict(trainer_jobs).get(i)) for i, c in enumerate(CARDS)]
        generators = [Replica(f"g{i}", location=c, job_id=dict(generator_jobs).get(i),
                              adapters=set(dict(held).get(i, ()))) for i, c in enumerate(CARDS)]
        return trainers, generators

    situations = [
        card_workers(),
        card_workers(held=[(1, {"m3"}), (2, {"m5", "m6"})]),
        card_workers(trainer_jobs=[(0, running[0])], generator_jobs=[(2, 99)]),
        card_workers(trainer_jobs=[(0, running[0]), (1, running[1])], held=[(1, {"m2"})]),
        card_workers(trainer_jobs=[(0, running[0]), (1, running[1])], generator_jobs=[(2, 99)], held=[(0, {"m4"})]),
        card_workers(generator_jobs=[(0, 98), (1, 99), (2, 97)]),
    ]
    planned = 0
    for trainers, generators in situations:
        for name in ("share", "yield"):
            for pausing in (set(), {running[0]}):
                old = await whole_queue_plan(store, trainers, generators, name, pausing)
                new = await line.plan(trainers=trainers, generators=generators, policy_name=name, pausing=pausing)
                assert decisions(new) == decisions(old), (name, pausing, trainers, generators)
                planned += bool(old.generations or old.trainings or old.pause)
    assert planned > 10  # the situations do decide things


async def test_a_request_that_cannot_be_read_leaves_the_front_and_the_next_takes_its_place(store, tmp_path):
    runner = JobRunner(store, BotSettings(data_dir=tmp_path / "data"))  # not started: no Ray is needed
    first, second = [await store.submit(JobKind.GENERATE, owner, request(JobKind.GENERATE, owner, 0), JobNotes(), 5)
                     for owner in MEMBERS[:2]]
    await store.db.execute("UPDATE jobs SET params = '{}' WHERE id = ?", (first.id,))
    front, _ = await runner.line.front(JobKind.GENERATE, 1)
    assert [j.id for j in front] == [second.id]
    failed = await store.existing(first.id)
    assert failed.state is JobState.FAILED and "base" in (failed.error or "")
