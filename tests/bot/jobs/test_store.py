import pytest

from bot import db
from bot.jobs.models import JobNotes
from bot.jobs.store import JobStore, QueueFull
from bot.members.owner import Owner
from contract import GenerateRequest, JobKind, JobState, TrainRequest

ANN = Owner(1, 100)
TRAINING = TrainRequest(base="tiny", token="ABCD12")
PICTURE = GenerateRequest(base="tiny", prompt="a cat")


@pytest.fixture
async def store(tmp_path):
    store = await JobStore.open(tmp_path / "jobs.sqlite3")
    yield store
    await store.close()


async def test_the_database_is_migrated_once_in_wal_mode(tmp_path):
    path = tmp_path / "db.sqlite3"
    for _ in range(2):  # opening again applies nothing twice
        connection = await db.connect(path)
        (version,) = await (await connection.execute("PRAGMA user_version")).fetchone()
        (mode,) = await (await connection.execute("PRAGMA journal_mode")).fetchone()
        (keys,) = await (await connection.execute("PRAGMA foreign_keys")).fetchone()
        await connection.close()
        assert (version, mode, keys) == (db.migrations()[-1][0], "wal", 1)


async def test_transitions_are_guarded_and_idempotent(store):
    job = await store.submit(JobKind.TRAIN, ANN, TRAINING, JobNotes(), max_active=5)
    assert job.state is JobState.QUEUED and job.training == TRAINING
    assert await store.claim(job.id, "w1") and not await store.claim(job.id, "w2")
    assert (await store.get(job.id)).worker == "w1"
    assert await store.requeue(job.id) and not await store.requeue(job.id)
    assert await store.claim(job.id, "w2")
    assert (await store.get(job.id)).attempts == 2
    assert await store.finish(job.id, JobState.SUCCEEDED, result={"lora": "x"})
    assert not await store.finish(job.id, JobState.FAILED, error="late")  # finishes once
    done = await store.get(job.id)
    assert (done.state, done.result, done.error, done.worker) == (JobState.SUCCEEDED, {"lora": "x"}, None, None)


async def test_a_queued_job_cancels_at_once_a_running_one_is_marked(store):
    queued = await store.submit(JobKind.GENERATE, ANN, PICTURE, JobNotes(), max_active=5)
    running = await store.submit(JobKind.GENERATE, ANN, PICTURE, JobNotes(), max_active=5)
    await store.claim(running.id, "w")
    assert await store.request_cancel(queued.id) is JobState.CANCELLED
    assert await store.request_cancel(running.id) is JobState.RUNNING
    assert (await store.get(running.id)).cancel_requested


async def test_a_member_cannot_queue_past_the_cap(store):
    for _ in range(2):
        await store.submit(JobKind.GENERATE, ANN, PICTURE, JobNotes(), max_active=2)
    with pytest.raises(QueueFull, match="2 requests waiting"):
        await store.submit(JobKind.GENERATE, ANN, PICTURE, JobNotes(), max_active=2)
    assert len(await store.in_state(JobState.QUEUED)) == 2
    await store.submit(JobKind.GENERATE, Owner(1, 200), PICTURE, JobNotes(), max_active=2)  # others are not held back


async def test_a_success_records_its_follow_ups_in_the_same_step(store):
    job = await store.submit(JobKind.TRAIN, ANN, TRAINING, JobNotes(), max_active=5)
    assert await store.claim(job.id, "w")
    assert await store.finish(job.id, JobState.SUCCEEDED, result={}, followups=("adopt", "announce"))
    assert await store.pending_followups(job.id) == ["adopt", "announce"]
    assert await store.jobs_with_pending_followups() == [job.id]
    # A second finish changes nothing and adds no follow-ups.
    assert not await store.finish(job.id, JobState.SUCCEEDED, result={}, followups=("adopt", "announce"))
    await store.followup_done(job.id, "adopt")
    assert await store.pending_followups(job.id) == ["announce"]

    failed = await store.submit(JobKind.TRAIN, ANN, TRAINING, JobNotes(), max_active=5)
    await store.claim(failed.id, "w")
    assert await store.finish(failed.id, JobState.FAILED, error="no", followups=("adopt",))
    assert await store.pending_followups(failed.id) == []
