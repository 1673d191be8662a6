"""The job record: a request parsed once as a row is read, the bot's notes typed beside it, and rows written
before migration 009 (notes inside the request, people probed from JSON) read as they were meant."""

from __future__ import annotations

import json
import sqlite3
import time

from bot import db
from bot.jobs.models import JobNotes, Reply
from bot.jobs.sink import ArtifactSink
from bot.jobs.store import JobStore
from bot.members.owner import Owner
from bot.members.store import MemberStore
from contract import AdapterRef, GenerateRequest, JobKind, JobState, TrainRequest

ANN, BOB, CY = Owner(1, 100), Owner(1, 200), Owner(1, 300)
TRAINING = TrainRequest(base="tiny", token="ABCD12", steps=40)
PICTURE = GenerateRequest(base="tiny", prompt="two friends",
                          adapters=(AdapterRef("b", "id-b"), AdapterRef("c", "id-c")))
REPLY = {"application_id": 7, "token": "interaction-token", "expires_at": 2e9}


def old_database(path, photos) -> None:
    """What doppel wrote before migration 009: its notes inside `params`, beside the request."""
    connection = sqlite3.connect(path)
    for number, script in db.migrations():
        if number < 9:
            connection.executescript(script.read_text())
    connection.execute("PRAGMA user_version = 8")
    now = time.time()
    rows = [
        ("train", ANN, "running", TRAINING.to_data() | {"images_dir": str(photos), "start_from": None,
                                                         "snapshot": False}),
        ("generate", ANN, "queued", PICTURE.to_data() | {"adapter_files": {"id-b": "/b", "id-c": "/c"},
                                                          "people": [200, 300], "plain": False, "channel_id": 55,
                                                          "reply": REPLY}),
    ]
    for kind, owner, state, params in rows:
        connection.execute(
            "INSERT INTO jobs (kind, guild_id, member_id, params, state, attempts, worker, created_at, started_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, 1, 'w', ?, ?, ?)",
            (kind, owner.guild_id, owner.member_id, json.dumps(params), state, now, now, now),
        )
    connection.commit()
    connection.close()


async def test_old_rows_are_migrated_and_read_as_they_were_meant(tmp_path, photos):
    path = tmp_path / "doppel.sqlite3"
    old_database(path, photos)
    store = await JobStore.open(path)
    try:
        training, picture = await store.get(1), await store.get(2)
        assert training.training == TRAINING and training.notes == JobNotes(images_dir=str(photos))
        assert picture.picture_request == PICTURE
        assert picture.notes == JobNotes(adapter_files={"id-b": "/b", "id-c": "/c"}, people=(200, 300),
                                         channel_id=55, reply=Reply(**REPLY))
        (params,) = await store.db.fetchone("SELECT params FROM jobs WHERE id = 2")
        assert json.loads(params) == PICTURE.to_data()  # the request alone

        # The line's summary (migration 010) is made from the old rows: one picture waits, ANN trained before.
        assert [(m.owner, m.queued, m.first_queued) for m in await store.in_line(JobKind.GENERATE)] == [(ANN, 1, 2)]
        assert set(await store.last_started(JobKind.TRAIN)) == {ANN}

        # The training resumes: what its next attempt reads is where the old row said.
        inputs = await ArtifactSink(tmp_path / "jobs").training_files(
            training.id, training.notes.images_dir, training.checkpoint, training.notes.start_from)
        assert set(inputs.photos) == {p.name for p in photos.iterdir()}

        # Who the picture draws is its own table: found, and forgotten, by a join.
        assert [j.id for j in await store.drawing(CY, JobState.QUEUED)] == [2]
        assert await store.drawing(ANN, JobState.QUEUED) == []
        erased = await MemberStore(store.db, tmp_path / "data").erase(CY)
        assert erased.jobs == (2,) and await store.get(2) is None
        assert await store.db.fetchall("SELECT * FROM job_people") == []
        assert await store.in_line(JobKind.GENERATE) == []
    finally:
        await store.close()


async def test_notes_go_in_and_come_out_typed_and_people_in_order(tmp_path):
    store = await JobStore.open(tmp_path / "doppel.sqlite3")
    try:
        notes = JobNotes(adapter_files={"id-c": "/c", "id-b": "/b"}, people=(300, 200), plain=True,
                         reply=Reply(7, "t", 1.5))
        job = await store.submit(JobKind.GENERATE, ANN, PICTURE, notes, max_active=5)
        assert job.notes == notes and job.picture_request == PICTURE and job.request_problem is None
        assert [j.id for j in await store.drawing(BOB, JobState.QUEUED)] == [job.id]
        await store.db.execute("UPDATE jobs SET params = ? WHERE id = ?", (json.dumps({"prompt": "old"}), job.id))
        unreadable = await store.get(job.id)
        assert unreadable.request is None and "base" in unreadable.request_problem
    finally:
        await store.close()
