"""Checking a photo for faces at intake (issue #13): target at most 0.5 s a photo at 2048 px on one core.

    python bench/faces.py
    python bench/faces.py --repeats 5

What the bot does for each upload (faces.verdict.look, in its face-check process): HOG on a 1024 px copy, the
CNN on a crop around each of HOG's best weak proposals, a 128-d descriptor per face, and the sharpness. Cases,
each a 2048 px photo made from skimage's pictures: the astronaut (HOG sure of her, one weak find on her mission
patch checked and dropped), the cameraman (HOG weak, the CNN confirms), a cup of coffee (no face: HOG's weak
proposals are checked and turned down), and the astronaut beside the cameraman.
Then judging a set of 40 looks (the medoid and every verdict: what happens again whenever a set changes), and the
distances the SAME_PERSON threshold rests on.

Figures: load_s (dlib's models, once per process), <case>_s (median wall time), <case>_cpu_s (its CPU time: what
it costs on a free core, whatever the machine's load), judge_40_s, and the distances. Pinned to one core.
Last line: every figure as key=value.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_S = 0.5
SIDE = 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from PIL import Image

    from faces import SAME_PERSON, distance
    from faces.models import models
    from faces.verdict import judge, look
    from tests.photos import astronaut, cameraman, no_face, side_by_side, variants

    figures: dict[str, float] = {}
    started = time.perf_counter()
    models()
    figures["load_s"] = round(time.perf_counter() - started, 3)

    def at_side(image: Image.Image) -> Image.Image:
        scale = SIDE / max(image.size)
        return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)

    cases = {
        "astronaut": at_side(astronaut()),
        "cameraman": at_side(cameraman()),
        "no_face": at_side(no_face()),
        "two_people": at_side(side_by_side(astronaut(), cameraman())),
    }
    for name, image in cases.items():
        walls, cpus, found = [], [], 0
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            found = len(look(image).faces)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        figures[f"{name}_s"] = round(statistics.median(walls), 3)
        figures[f"{name}_cpu_s"] = round(statistics.median(cpus), 3)
        print(f"{name}: {image.width}x{image.height}, {found} face(s), {figures[f'{name}_s']} s "
              f"({figures[f'{name}_cpu_s']} s CPU)")

    her = {n: look(i) for n, i in {"original": astronaut(), **variants(astronaut())}.items()}
    him = {n: look(i) for n, i in {"original": cameraman(), **variants(cameraman())}.items()}
    sets = [found for found in itertools.islice(itertools.cycle([*her.values(), *him.values()]), 40)]
    started = time.perf_counter()
    judge(sets)
    figures["judge_40_s"] = round(time.perf_counter() - started, 4)

    def spread(a: dict, b: dict, same: bool) -> float:
        pairs = itertools.combinations(a.values(), 2) if same else itertools.product(a.values(), b.values())
        gaps = [distance(x.faces[0].descriptor, y.faces[0].descriptor) for x, y in pairs if x.faces and y.faces]
        return round(max(gaps) if same else min(gaps), 3)

    figures["astronaut_variants_max"] = spread(her, her, True)
    figures["cameraman_variants_max"] = spread(him, him, True)
    figures["two_people_min"] = spread(her, him, False)
    print(f"distances: the astronaut's variants within {figures['astronaut_variants_max']}, the cameraman's within "
          f"{figures['cameraman_variants_max']}, the two at least {figures['two_people_min']} apart; "
          f"SAME_PERSON = {SAME_PERSON}")
    print(f"judging 40 photos: {figures['judge_40_s']} s")
    for case, said in (("astronaut", "with a face"), ("no_face", "without a face")):
        verdict = "within" if figures[f"{case}_cpu_s"] <= TARGET_S else "OVER"
        print(f"a photo {said} at {SIDE} px: {figures[f'{case}_cpu_s']} s of CPU, {verdict} the {TARGET_S} s target")
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
