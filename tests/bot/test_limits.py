"""Who doppel serves and how much it keeps: the server allow-list, a member's disk, photos that leave no copy,
duplicates refused before decoding, pictures deleted after their retention. End to end, through the stand-in."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

from bot import intake
from bot.app import NOT_SERVED
from bot.jobs.models import JobNotes
from bot.jobs.store import JobStore
from bot.members import storage
from contract import GenerateRequest, JobKind, JobState, RunLayout
from fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)
from tests.bot.test_bot import actors, add_photos, jpeg, photo_options, rows_of, started, world  # noqa: F401
from tests.photos import scene


def files_under(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_a_server_not_on_the_list_gets_the_refusal_and_nothing_is_kept(world):
    w = world
    other = w.fake.add_guild("Elsewhere")
    eve, lounge = other.add_member("eve"), other.add_text_channel("lounge")
    w.settings = w.settings.model_copy(update={"allowed_guilds": [w.guild.id]})
    async with started(w):
        refused = await w.fake.slash(eve, lounge, "dataset add", attachments=photo_options(1))
        answer = await refused.original()
        assert answer.content == NOT_SERVED and answer.ephemeral
        token = await w.fake.slash(eve, lounge, "token")
        assert (await token.original()).content == NOT_SERVED
        assert set(rows_of(w.settings, eve.id).values()) == {0}
        assert not (w.settings.data_dir / "members" / str(other.id)).exists()

        # The listed server is served, and so are DMs of a member known there.
        assert "trigger token" in (await (await w.fake.slash(w.ann, w.general, "token")).original()).content
        sent = await w.fake.dm(w.ann, "me", [("garden.jpg", jpeg(scene(7)), "image/jpeg")])
        await sent.channel.wait_for_message(lambda m: "added as photo 1" in m.content)


async def test_a_member_over_the_disk_limit_is_told_and_nothing_is_half_written(world, monkeypatch):
    w = world
    monkeypatch.setattr(storage, "MB", 1024)  # the stand-in's photos are 3 KB: count the limit in KB
    w.settings = w.settings.model_copy(update={"member_disk_mb": 20})
    async with started(w) as bot:
        report = (await add_photos(w, w.ann, count=10)).content
        assert report.count("✅") == 6 and report.count("❌") == 4, report
        assert "of the 20 MB you may fill" in report
        folder = bot.members.folder(w.owner(w.ann))
        kept = files_under(folder)
        assert len(kept) == 6 == rows_of(w.settings, w.ann.id)["photos"]
        assert not any(p.name.startswith(".") for p in kept)  # no temporary file left behind

        train = await w.fake.slash(w.ann, w.general, "train", options={"steps": 10})
        refusal = (await train.wait_followup()).content
        assert refusal.startswith("I cannot train now") and "MB you may fill" in refusal
        assert files_under(folder) == kept and rows_of(w.settings, w.ann.id)["jobs"] == 0


async def test_remove_and_clear_leave_no_copy_of_a_photo(world):
    w = world
    async with started(w) as bot:
        await add_photos(w, w.ann, count=4)
        ann = w.owner(w.ann)
        stored = [Path(p.path).read_bytes() for p in await bot.members.photos(ann)]

        await w.fake.slash(w.ann, w.general, "train", options={"steps": 600})
        progress = await w.general.wait_for_message(lambda m: "Training the adapter" in m.content)
        await w.fake.wait_for_edit(progress, lambda m: "step" in m.content, timeout=60)
        busy = await w.fake.slash(w.ann, w.general, "dataset remove", options={"number": 1})
        assert "/cancel" in (await busy.original()).content
        assert len(await bot.members.photos(ann)) == 4

        await w.fake.slash(w.ann, w.general, "cancel")
        await w.fake.wait_for_edit(progress, lambda m: "Cancelled" in m.content, timeout=30)
        job = (await bot.jobs.of_owner(ann, *JobState))[0]
        assert not list(RunLayout.of_job(w.settings.jobs_dir, job.id).checkpoints.glob("*"))  # a cancelled run's

        removed = await w.fake.slash(w.ann, w.general, "dataset remove", options={"number": 1})
        assert "You have 3 left" in (await removed.original()).content
        cleared = await w.fake.slash(w.ann, w.general, "dataset clear")
        assert "Removed all 3" in (await cleared.original()).content
        left = {p.read_bytes() for p in files_under(w.settings.data_dir)}
        assert not left & set(stored)


async def test_an_exact_duplicate_is_refused_without_decoding(world, monkeypatch):
    w = world
    decoded = []
    real = intake.prepare
    monkeypatch.setattr(intake, "prepare", lambda data, limits: decoded.append(data) or real(data, limits))
    upload = {"photo": ("me.jpg", jpeg(scene(3)), "image/jpeg")}
    async with started(w):
        first = await w.fake.slash(w.ann, w.general, "dataset add", attachments=upload)
        assert "added as photo 1" in (await first.wait_followup(lambda m: "You have" in m.content)).content
        again = await w.fake.slash(w.ann, w.general, "dataset add", attachments=upload)
        assert "same picture as photo 1" in (await again.wait_followup(lambda m: "You have" in m.content)).content
    assert len(decoded) == 1


async def test_pictures_older_than_the_retention_are_deleted(world):
    w = world
    store = await JobStore.open(w.settings.database_file)
    request = GenerateRequest(base="tiny", prompt="a lighthouse", seed=5)
    jobs = {}
    for age_days in (31, 29):
        job = await store.submit(JobKind.GENERATE, w.owner(w.ann), request, JobNotes(), max_active=3)
        finished = time.time() - age_days * 86400
        await store.db.execute("UPDATE jobs SET state = 'succeeded', finished_at = ? WHERE id = ?",
                               (finished, job.id))
        picture = RunLayout.of_job(w.settings.jobs_dir, job.id).picture(5)
        picture.parent.mkdir(parents=True)
        picture.write_bytes(b"png")
        jobs[age_days] = (job.id, picture)
    await store.close()
    stale = w.settings.data_dir / "members" / "1" / "2" / "runs" / "abc"  # a snapshot no job reads any more
    stale.mkdir(parents=True)
    (stale / "001.jpg").write_bytes(b"jpeg")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    async with started(w):
        for _ in range(100):
            if not jobs[31][1].exists():
                break
            await asyncio.sleep(0.1)
    assert not jobs[31][1].parent.exists() and jobs[29][1].exists() and not stale.exists()
    with sqlite3.connect(w.settings.database_file) as db:
        assert {row[0] for row in db.execute("SELECT id FROM jobs")} == {jobs[29][0]}
