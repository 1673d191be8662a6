"""Training-loop speed: steps per second, peak memory, and time spent outside the transformer.

    python bench/train.py                 # tiny and small on this machine
    python bench/train.py --shapes dev    # FLUX.1-dev's real shape, random weights (needs a GPU)
    python bench/train.py --shapes klein-4b   # FLUX.2 [klein] base 4B's real shape (its published config; a GPU)
    python bench/train.py --shapes tiny-klein # the tiny klein on this machine

Each shape runs in its own process so peak memory is that shape's alone.
"Outside" is the share of a step not spent in the transformer's forward and
backward: batch assembly, noise, the optimizer, clipping. Its target is 5% or less.
The last line holds every figure as key=value.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

STEPS = {"tiny": 300, "small": 60, "dev": 30, "tiny-klein": 300, "klein-4b": 30}
NEEDS_A_GPU = ("dev", "klein-4b")


def measure(shape_name: str, steps: int, resolution: int | None) -> dict:
    import torch

    from bench.shapes import base_of, build, shape_of
    from contract import Step
    from tests.photos import write_photos
    from trainer.training.config import TrainConfig
    from trainer.training.train import train_lora

    shape, _ = shape_of(shape_name)
    cuda = torch.cuda.is_available()
    if shape_name in NEEDS_A_GPU and not cuda:
        return {"shape": shape_name, "skipped": "no GPU"}
    device = "cuda" if cuda else "cpu"
    resolution = resolution or shape.resolution
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        pipe = build(shape_name, device)
        base = base_of(shape_name, resolution, resolution)
        events: list[Step] = []
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        train_lora(
            TrainConfig.from_options(
                base=shape_name,
                images=write_photos(scratch / "photos"),
                token="THGH96",
                out=scratch / "out",
                steps=steps,
                resolution=resolution,
                checkpoint_every=steps + 1,
                sample_every=0,
                time_steps=True,
                device=device,
            ),
            on_event=lambda e: events.append(e) if isinstance(e, Step) else None,
            pipeline=pipe,
            base=base,
        )
        total_s = time.perf_counter() - started

    warm = events[len(events) // 10 :]  # the first steps pay for allocation and kernel choice
    step_times = [b.elapsed_s - a.elapsed_s for a, b in pairwise(warm)]
    model_times = [e.model_s for e in warm[1:]]
    result = {
        "shape": shape_name,
        "device": device,
        "resolution": resolution,
        "steps_per_s": round(len(step_times) / sum(step_times), 2),
        "s_per_step": round(sum(step_times) / len(step_times), 4),
        "outside_pct": round(100 * (1 - sum(model_times) / sum(step_times)), 1),
        "run_s_including_caching": round(total_s, 2),
    }
    if cuda:
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    else:
        result["peak_rss_growth_mib"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="tiny,small", help="comma-separated: " + ", ".join(STEPS))
    parser.add_argument("--steps", type=int, default=None, help="steps per shape (default: per shape)")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: measure one shape, print JSON
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure(args.one, args.steps or STEPS[args.one], args.resolution)))
        return

    figures = {}
    for shape in args.shapes.split(","):
        command = [sys.executable, __file__, "--one", shape]
        if args.steps:
            command += ["--steps", str(args.steps)]
        if args.resolution:
            command += ["--resolution", str(args.resolution)]
        child = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(json.dumps(result))
        for key, value in result.items():
            if key != "shape":
                figures[f"{shape}_{key}"] = value
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
