"""The job runner against a real local Ray, the real trainer and the tiny model."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bot.jobs.store import QueueFull
from bot.members.owner import Owner
from contract import AdapterRef, GenerateRequest, JobState, TrainRequest, adapter_identity
from tests.conftest import TOKEN
from trainer.training.config import TrainConfig
from trainer.training.lora_file import read_facts
from trainer.training.train import train_lora

ANN, BOB, BLOCKED = Owner(1, 100), Owner(1, 200), Owner(1, 250)
MEMBERS = [Owner(1, 300 + k) for k in range(5)]


def training(photos, **overrides) -> dict:
    """submit_training's arguments: a small run on the tiny model."""
    fields = {"base": "tiny", "token": TOKEN, "steps": 40, "lr": 1e-2, "checkpoint_every": 20, "sample_every": 20}
    return {"request": TrainRequest(**(fields | overrides)), "images_dir": photos}


def picture(prompt=f"photo of {TOKEN}", adapters=(), **overrides) -> dict:
    """submit_generation's arguments; `adapters`: (name, file) pairs."""
    refs = [AdapterRef(name, adapter_identity(Path(path).read_bytes())) for name, path in adapters]
    fields = {"base": "tiny", "prompt": prompt, "count": 1, "seed": 1, "adapters": refs}
    request = GenerateRequest(**(fields | overrides))
    files = {r.identity: path for r, (_, path) in zip(refs, adapters, strict=True)}
    return {"request": request, "adapter_files": files}


class Watch:
    """Every update of a job, and a way to wait for one that matches."""

    def __init__(self, runner, job_id):
        self.updates = []
        self._changed = asyncio.Condition()
        runner.subscribe(job_id, self._add)

    async def _add(self, update):
        async with self._changed:
            self.updates.append(update)
            self._changed.notify_all()

    async def until(self, predicate, timeout=60):
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: any(map(predicate, self.updates))), timeout)

    def steps(self):
        return [u.progress.step for u in self.updates if u.progress and u.progress.step is not None]


def past_step(n):
    return lambda u: bool(u.progress) and (u.progress.step or 0) >= n


async def test_a_training_job_reports_progress_and_delivers_its_adapter(make_runner, photos):
    captioned: dict[str, str] = {}

    class Captions:  # what the bot gives the member's photos that had none
        async def captions_written(self, job, captions):
            captioned.update(captions)

    runner = await make_runner(captions=Captions())
    job = await runner.submit_training(ANN, **training(photos, caption_model="tiny"))
    watch = Watch(runner, job.id)
    done = await runner.wait(job.id, timeout=120)

    assert done.state is JobState.SUCCEEDED, done.error
    assert len(captioned) == 2 and all(c.startswith(f"photo of {TOKEN}") for c in captioned.values())
    assert read_facts(done.training_result.adapter)["token"] == TOKEN
    assert len(done.training_result.samples) == 6  # two prompts at steps 0, 20 and 40
    assert Path(done.training_result.timeline).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.checkpoint_step == 40 and Path(done.checkpoint).is_file()
    assert done.progress.step == 40 and done.attempts == 1
    states = [u.state for u in watch.updates]
    assert states[0] is JobState.RUNNING and states[-1] is JobState.SUCCEEDED
    assert watch.steps() and watch.steps() == sorted(watch.steps())
    assert any(u.samples for u in watch.updates)
    # Coalesced: far fewer progress updates than steps.
    assert len(watch.steps()) < 40


async def test_a_picture_job_uses_the_adapter_and_stays_with_the_replica_holding_it(make_runner, trained):
    runner = await make_runner()
    adapters = [("ann", trained.lora_path)]
    plain = await runner.wait((await runner.submit_generation(ANN, **picture())).id, timeout=60)
    first = await runner.wait((await runner.submit_generation(ANN, **picture(adapters=adapters))).id, timeout=60)
    assert plain.state is first.state is JobState.SUCCEEDED, (plain.error, first.error)
    (image,) = first.pictures.images
    assert image.seed == 1 and Path(image.path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(image.path).read_bytes() != Path(plain.pictures.images[0].path).read_bytes()
    assert runner.generators[0].adapters == {"ann"}


async def test_cancel_stops_a_running_training_and_removes_a_queued_one(make_runner, photos):
    runner = await make_runner()
    running = await runner.submit_training(ANN, **training(photos, steps=5000, sample_every=0))
    queued = await runner.submit_training(ANN, **training(photos))  # one training per member at a time
    watch = Watch(runner, running.id)
    await watch.until(past_step(5))

    assert await runner.cancel(queued.id) is JobState.CANCELLED
    assert (await runner.store.get(queued.id)).state is JobState.CANCELLED
    await runner.cancel(running.id)
    stopped = await runner.wait(running.id, timeout=10)
    assert stopped.state is JobState.CANCELLED
    assert stopped.progress.step < 5000
    # The GPU is free again: the next job runs.
    after = await runner.submit_training(BOB, **training(photos, steps=2, sample_every=0))
    assert (await runner.wait(after.id, timeout=60)).state is JobState.SUCCEEDED


async def test_a_killed_worker_resumes_from_its_checkpoint_and_ends_as_if_unbroken(make_runner, photos, tmp_path):
    runner = await make_runner()
    job = await runner.submit_training(ANN, **training(photos, steps=300, checkpoint_every=50, sample_every=0))
    watch = Watch(runner, job.id)
    await watch.until(past_step(120))
    where = await runner.trainers[0].handle.where.remote()
    os.kill(where["pid"], signal.SIGKILL)

    done = await runner.wait(job.id, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.attempts == 2
    assert done.progress.resumed_from >= 100 and done.progress.resumed_from % 50 == 0  # its newest checkpoint
    unbroken = train_lora(
        TrainConfig.from_options(base="tiny", images=photos, token=TOKEN, out=tmp_path / "unbroken", steps=300, lr=1e-2,
                    checkpoint_every=50, sample_every=0)
    )
    resumed, whole = load_file(done.training_result.adapter), load_file(unbroken.lora_path)
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6)


async def test_a_restarted_bot_reattaches_to_training_still_running(make_runner, photos):
    first = await make_runner()
    job = await first.submit_training(ANN, **training(photos, steps=600, checkpoint_every=100, sample_every=0))
    watch = Watch(first, job.id)
    await watch.until(past_step(30))
    await first.stop()  # the bot goes away; its detached trainer keeps going

    second = await make_runner()
    after_restart = Watch(second, job.id)
    done = await second.wait(job.id, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.attempts == 1  # never restarted: the same run went on
    assert after_restart.steps()[0] > 30
    assert done.progress.resumed_from is None


async def test_a_restarted_bot_requeues_work_lost_while_it_was_away(make_runner, photos):
    first = await make_runner()
    job = await first.submit_training(ANN, **training(photos, steps=400, checkpoint_every=50, sample_every=0))
    await Watch(first, job.id).until(past_step(60))
    await first.stop()
    for worker in first.trainers:  # the trainer goes too: a new machine, say
        where = await worker.handle.where.remote()
        os.kill(where["pid"], signal.SIGKILL)

    second = await make_runner()
    done = await second.wait(job.id, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.checkpoint_step == 400


async def test_pictures_are_served_within_the_bound_while_training_runs(make_runner, photos):
    runner = await make_runner(gpu_sharing="yield", generation_max_wait_s=5)
    assert runner.policy == "yield"
    train = await runner.submit_training(ANN, **training(photos, steps=400, checkpoint_every=100, sample_every=0))
    watch = Watch(runner, train.id)
    await watch.until(past_step(20))

    pictures = []
    for member in MEMBERS:
        pictures.append(await runner.submit_generation(member, **picture(seed=member.member_id)))
    done = [await runner.wait(p.id, timeout=60) for p in pictures]
    assert all(p.state is JobState.SUCCEEDED for p in done), [p.error for p in done]
    waits = [runner.timings[p.id]["started"] - runner.timings[p.id]["submitted"] for p in done]
    assert max(waits) <= 5, waits

    trained = await runner.wait(train.id, timeout=120)
    assert trained.state is JobState.SUCCEEDED and trained.attempts == 1
    assert trained.progress.resumed_from > 0  # it stepped aside at a checkpoint, then went on


async def test_members_take_turns(make_runner):
    runner = await make_runner(start=False)
    owners = [ANN, ANN, ANN, BOB, BOB]
    jobs = [await runner.submit_generation(owner, **picture(seed=k)) for k, owner in enumerate(owners)]
    assert [await runner.position(j.id) for j in jobs] == [1, 3, 5, 2, 4]

    await runner.start()
    done = [await runner.wait(j.id, timeout=60) for j in jobs]
    started = sorted(done, key=lambda j: runner.timings[j.id]["started"])
    assert [j.owner for j in started] == [ANN, BOB, ANN, BOB, ANN]


async def test_one_training_per_member_and_a_cap_on_waiting_requests(make_runner, photos):
    runner = await make_runner(start=False, max_active_jobs_per_member=2)
    ann_first = await runner.submit_training(ANN, **training(photos, steps=3, sample_every=0))
    ann_second = await runner.submit_training(ANN, **training(photos, steps=3, sample_every=0))
    with pytest.raises(QueueFull, match="limit is 2"):
        await runner.submit_generation(ANN, **picture())
    bob = await runner.submit_training(BOB, **training(photos, steps=3, sample_every=0))

    await runner.start()
    done = [await runner.wait(j.id, timeout=60) for j in (ann_first, ann_second, bob)]
    order = sorted(done, key=lambda j: runner.timings[j.id]["started"])
    assert [j.id for j in order] == [ann_first.id, bob.id, ann_second.id]


async def test_a_failing_job_explains_itself_and_the_queue_goes_on(make_runner, photos, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "empty.jpg").write_bytes(b"")

    class Access:  # blocked while their jobs waited: refused as each starts
        async def refusal(self, job):
            return "an admin blocked you" if job.owner == BLOCKED else None

    runner = await make_runner(access=Access())
    bad = await runner.submit_training(ANN, **training(broken))
    missing = await runner.submit_training(BOB, **training(tmp_path / "nowhere"))
    good = await runner.submit_generation(ANN, **picture())
    refused = [await runner.submit_training(BLOCKED, **training(photos)),
               await runner.submit_generation(BLOCKED, **picture())]

    assert (failed := await runner.wait(bad.id, timeout=60)).state is JobState.FAILED
    assert "empty.jpg" in failed.error and "empty" in failed.error
    assert (gone := await runner.wait(missing.id, timeout=60)).state is JobState.FAILED
    assert "photos are gone" in gone.error
    assert (await runner.wait(good.id, timeout=60)).state is JobState.SUCCEEDED
    for job in refused:
        done = await runner.wait(job.id, timeout=60)
        assert (done.state, done.error) == (JobState.FAILED, "an admin blocked you")
        assert "started" in runner.timings[job.id]  # it was dispatched, and refused there
