"""Scoring a checkpoint's samples for likeness on the CPU (issue #13): target under 1 s.

    python bench/likeness.py            # 512 px samples, as FLUX.1-dev's training resolution draws them
    python bench/likeness.py --side 1024

A checkpoint's samples are the run's two sample prompts, each scored by `trainer.training.likeness.likeness`
(timed in this process, one after the other: the CPU's work) and by the run's `SampleScorer` (two worker
processes, one sample each, beside the training loop: the time until the step's scores are in):
faces found (dlib's HOG, its CNN on crops around HOG's weak proposals), each described, and the nearest to the
member's identity measured. The identity is the medoid of three photos of skimage's astronaut. Cases: the member
drawn twice (the usual case late in a run), someone else (the cameraman), no face (skimage's coffee: HOG's
proposals checked and turned down), and the tiny model's 64 px noise. Run on one core (the others train or feed
the GPU).

Figures: load_s (dlib's models, once per process), <case>_s (median of 3, both samples one after the other),
<case>_cpu_s (the CPU time of that: what it costs on a free core, whatever the machine's load),
<case>_beside_s (median of 3, both samples in the scorer's two processes), and the scores.
Last line: every figure as key=value.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512, help="the samples' side in px (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

    import numpy as np
    from PIL import Image, ImageOps
    from skimage import data

    from faces import find_faces, identity_of
    from trainer.training.likeness import likeness
    from trainer.training.scoring import SampleScorer

    astronaut = Image.fromarray(data.astronaut())
    started = time.perf_counter()
    photos = [astronaut.crop((96, 16, 416, 336)), ImageOps.mirror(astronaut), astronaut.crop((40, 0, 512, 472))]
    descriptors = [find_faces(photo)[0].descriptor for photo in photos]
    load_s = time.perf_counter() - started  # the models' first load, and three photos looked at
    member = identity_of(descriptors)

    def sized(image: Image.Image) -> Image.Image:
        return image.convert("RGB").resize((args.side, args.side), Image.Resampling.LANCZOS)

    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    cases = {
        "member": (sized(astronaut), sized(ImageOps.mirror(astronaut))),
        "other": (sized(Image.fromarray(data.camera())),) * 2,
        "no_face": (sized(Image.fromarray(data.coffee())),) * 2,
        "tiny_noise": (Image.fromarray(noise),) * 2,
    }
    figures: dict[str, float] = {"load_s": round(load_s, 3), "side": args.side}
    if cores:  # this process on one core, the scorer's two processes on two others where there are
        os.sched_setaffinity(0, {cores[0]})
    scorer = SampleScorer(member, Path(tempfile.gettempdir()))
    warm = [scorer.submit(cases["tiny_noise"][0]) for _ in range(2)]  # its processes start and load dlib's models
    [SampleScorer.result(f) for f in warm]
    for name, samples in cases.items():
        times, cpu, scores = [], [], []
        for _ in range(args.repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            scores = [likeness(sample, member) for sample in samples]
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        figures[f"{name}_s"] = round(statistics.median(times), 3)
        figures[f"{name}_cpu_s"] = round(statistics.median(cpu), 3)
        figures[f"{name}_score"] = scores[0] if scores[0] is not None else -1.0
        beside = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            futures = [scorer.submit(sample) for sample in samples]
            assert [SampleScorer.result(f) for f in futures] == [(True, score) for score in scores]
            beside.append(time.perf_counter() - started)
        figures[f"{name}_beside_s"] = round(statistics.median(beside), 3)
        said = ", ".join("no face" if s is None else f"{s:.2f}" for s in scores)
        verdict = "within" if figures[f"{name}_beside_s"] < TARGET_S else "OVER"
        print(f"{name:>11}: {figures[f'{name}_s']:.3f} s ({figures[f'{name}_cpu_s']:.3f} s of CPU) for 2 samples "
              "one after the other, "
              f"{figures[f'{name}_beside_s']:.3f} s beside the loop ({verdict} {TARGET_S} s); likeness {said}")
    scorer.close()
    print(f"load: {load_s:.2f} s (dlib's models, once per process, and the identity's three photos)")
    print(f"cores: {len(cores)}, load average {os.getloadavg()[0]:.1f} (a busy machine slows every figure)")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
