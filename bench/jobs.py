"""The job layer's cost and its promise to pictures, on the tiny model and a local Ray.

    python bench/jobs.py

job_overhead_s: one tiny training job submitted through the queue and Ray, from
submit to finished, minus the same training called in-process (both warm).

max_generation_wait_s: the longest a picture request waited to start while a
training run held the one GPU, under the `yield` policy with the bound at 5 s.
The last line holds the figures as key=value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ["BASE_MODEL"] = "tiny"

TRAIN = {"base": "tiny", "token": "THGH96", "steps": 100, "lr": 1e-2, "checkpoint_every": 50, "sample_every": 0}
BOUND_S = 5.0
PICTURES = 8


def in_process_seconds(photos: Path, scratch: Path) -> float:
    from contract import TrainRequest
    from trainer.training.config import TrainConfig
    from trainer.training.train import train_lora

    request = TrainRequest(**TRAIN)
    train_lora(TrainConfig(request, images=photos, out=scratch / "warm-up"))
    started = time.perf_counter()
    train_lora(TrainConfig(request, images=photos, out=scratch / "measured"))
    return time.perf_counter() - started


async def through_queue(photos: Path, scratch: Path) -> tuple[float, list[float]]:
    import ray

    from bot.jobs.runner import JobRunner
    from bot.jobs.store import JobStore
    from bot.members.owner import Owner
    from bot.settings import BotSettings
    from contract import GenerateRequest, TrainRequest

    settings = BotSettings(
        data_dir=scratch / "data",
        ray_num_gpus=1,
        gpu_sharing="yield",
        generation_max_wait_s=BOUND_S,
        progress_interval_s=1,
        max_active_jobs_per_member=50,
    )
    store = await JobStore.open(settings.database_file)
    runner = JobRunner(store, settings)
    await runner.start()
    try:
        member = Owner(1, 1)
        request = TrainRequest(**TRAIN)
        await runner.wait((await runner.submit_training(member, request, images_dir=photos)).id)  # loads the model
        job = await runner.submit_training(member, request, images_dir=photos)
        await runner.wait(job.id)
        timing = runner.timings[job.id]
        queued_s = timing["finished"] - timing["submitted"]

        longer = dataclasses.replace(request, steps=1500, checkpoint_every=500)
        long_run = await runner.submit_training(member, longer, images_dir=photos)
        started = asyncio.Event()
        runner.subscribe(long_run.id, lambda u: started.set() if u.progress and u.progress.step else None)
        await asyncio.wait_for(started.wait(), 60)
        waits = []
        for k in range(PICTURES):
            asked = GenerateRequest(base="tiny", prompt="photo of THGH96", seed=k)
            picture = await runner.submit_generation(Owner(1, 100 + k), asked, {})
            await runner.wait(picture.id, 60)
            waits.append(runner.timings[picture.id]["started"] - runner.timings[picture.id]["submitted"])
            await asyncio.sleep(0.5)  # let training take the GPU back before the next request arrives
        await runner.wait(long_run.id, 300)
        return queued_s, waits
    finally:
        await runner.stop()
        runner.transport.remove(runner.trainers + runner.generators)
        await store.close()
        ray.shutdown()


def main() -> None:
    from tests.photos import write_photos

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        photos = write_photos(scratch / "photos")
        direct_s = in_process_seconds(photos, scratch)
        queued_s, waits = asyncio.run(through_queue(photos, scratch))
    print(f"in-process training: {direct_s:.2f} s; through the queue and Ray: {queued_s:.2f} s")
    listed = ", ".join(f"{w:.2f}" for w in waits)
    print(f"picture waits under yield (s): {listed}; median {statistics.median(waits):.2f}")
    print(
        f"job_overhead_s={queued_s - direct_s:.2f} max_generation_wait_s={max(waits):.2f} "
        f"bound_s={BOUND_S:g} policy=yield"
    )


if __name__ == "__main__":
    main()
