"""A training's start-up on the tiny model: from the interpreter's start (imports included) to its first step.

    python bench/startup.py [--photos 8]

The photos show no face (skimage's pictures at 1024 px: the face check's worst case, dlib's CNN on each), as
a member's kept photos may. Two runs, each in a fresh process: `told`, with what the bot's face checks saw
beside the photos (contract.LOOKS_FILENAME, as /train's copy carries it), and `untold`, without: the trainer
looks at every photo itself. Last line: startup_s_told=.. startup_s_untold=.. load=.. (the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PICTURES = ("coffee", "chelsea", "rocket", "astronaut_free_hubble", "coins", "clock", "gravel", "brick")


def write_faceless(folder: Path, count: int, looks: bool) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    told = {}
    for index in range(count):
        name = PICTURES[index % len(PICTURES)]
        array = getattr(data, name if name != "astronaut_free_hubble" else "hubble_deep_field")()
        picture = Image.fromarray(array if array.ndim == 3 else np.stack([array] * 3, -1)).convert("RGB")
        scale = 1024 / max(picture.size)
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
        path = folder / f"{index + 1:03d}.jpg"
        picture.save(path, quality=92)
        if looks:
            from faces.verdict import look

            with Image.open(path) as stored:
                told[path.name] = look(stored.convert("RGB")).to_data()
    if looks:
        from contract import LOOKS_FILENAME

        (folder / LOOKS_FILENAME).write_text(json.dumps(told))


def first_step(images: str, out: str, started: float) -> float:
    from contract import Step
    from trainer.training.config import TrainConfig
    from trainer.training.train import train_lora

    seen: list[float] = []

    def on_event(event) -> None:
        if isinstance(event, Step) and not seen:
            seen.append(time.time())

    train_lora(TrainConfig(base="tiny", images=Path(images), token="THGH96", out=Path(out), steps=2,
                           checkpoint_every=3, sample_every=0), on_event=on_event)
    return seen[0] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # child: images, out, its start time
    args = parser.parse_args()
    if args.one:
        print(first_step(args.one[0], args.one[1], float(args.one[2])))
        return
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for case in ("told", "untold"):
            images = Path(scratch) / case
            images.mkdir()
            write_faceless(images, args.photos, looks=case == "told")
            command = [sys.executable, __file__, "--one", str(images), str(Path(scratch) / f"{case}-out"),
                       repr(time.time())]
            child = subprocess.run(command, capture_output=True, text=True, check=True)
            figures[f"startup_s_{case}"] = round(float(child.stdout.strip().splitlines()[-1]), 2)
            print(f"{case}: {figures[f'startup_s_{case}']} s from start to the first step")
    figures["load"] = round(os.getloadavg()[0], 2)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
