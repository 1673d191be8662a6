"""A training's start-up on the tiny model: from the interpreter's start (imports included) to its first step.

    python bench/startup.py [--photos 8] [--side 1024] [--repeats 3]
    python bench/startup.py --diffusers DIFFUSERS/examples/dreambooth/train_dreambooth_lora_flux.py \
        [--torchvision DIR]

The photos show no face (skimage's pictures, their long side --side px: 4000 for a 12-megapixel phone's), as a
member's kept photos may. Runs, each in a fresh process: `told`, with what the bot's face checks saw beside the
photos (contract.LOOKS_FILENAME, as /train's copy carries it), `untold`, without: the trainer looks at every
photo itself, and with --diffusers, `diffusers`: diffusers' own dreambooth LoRA script (read from the given
path, never copied into the project) on the same tiny model folder and the same photos, offline, at the same
resolution, rank and sequence length, stopped at the end of its first optimizer step. It needs torchvision;
--torchvision DIR puts a folder on that run's path only (`pip install --no-deps --target DIR torchvision==...`),
so a torchvision that does not suit the installed torch (a CUDA build beside torch's CPU build breaks
transformers' imports) stays out of the environment; where its compiled operators do not load, the script still
runs, on its pure-Python transforms.

Figures, medians over --repeats runs of each (interleaved): startup_s_<run> (wall time: the machine's load is
in it), startup_cpu_s_<run> (the CPU time of the run and the processes it waited for, up to its first step: what
it costs on a free machine), and with --diffusers ratio_<run> (told and untold: doppel's CPU time over the
diffusers script's; 1 or less meets issue #21's goal). Last line: every figure as key=value, and load= (the load
average).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOKEN = "THGH96"
PICTURES = ("coffee", "chelsea", "rocket", "astronaut_free_hubble", "coins", "clock", "gravel", "brick")


def write_faceless(folder: Path, count: int, looks: bool, side: int = 1024) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    told = {}
    for index in range(count):
        name = PICTURES[index % len(PICTURES)]
        array = getattr(data, name if name != "astronaut_free_hubble" else "hubble_deep_field")()
        picture = Image.fromarray(array if array.ndim == 3 else np.stack([array] * 3, -1)).convert("RGB")
        scale = side / max(picture.size)
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


def spent() -> tuple[float, float]:
    """(wall seconds since the epoch, CPU seconds of this process and the children it waited for)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.time(), own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def first_step(images: str, out: str, started: float) -> tuple[float, float]:
    from contract import Step
    from trainer.training.train import train_lora

    seen: list[tuple[float, float]] = []

    def on_event(event) -> None:
        if isinstance(event, Step) and not seen:
            seen.append(spent())

    train_lora(doppel_config(Path(images), Path(out)), on_event=on_event)
    return seen[0][0] - started, seen[0][1]


def doppel_config(images: Path, out: Path):
    from trainer.training.config import TrainConfig

    return TrainConfig.from_options(base="tiny", images=images, token=TOKEN, out=out, steps=2,
                                    checkpoint_every=3, sample_every=0)


def diffusers_first_step(script: str, arguments: list[str], started: float) -> None:
    """Run diffusers' script in this process and leave at the end of its first optimizer step, printing the
    figures (its own exit would save the LoRA and tear down accelerate: not start-up)."""
    import runpy

    try:
        import torchvision  # noqa: F401
    except RuntimeError:  # its operators are built for another torch: leave out their registration for torch.compile
        import types

        for name in [name for name in sys.modules if name.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    from torch.optim.optimizer import register_optimizer_step_post_hook

    def stop(*_) -> None:
        wall, cpu = spent()
        print(wall - started, cpu, flush=True)
        os._exit(0)

    register_optimizer_step_post_hook(stop)
    sys.argv = [script, *arguments]
    runpy.run_path(script, run_name="__main__")
    raise SystemExit("diffusers' script ended before its first step")


def diffusers_arguments(images: Path, out: Path) -> list[str]:
    from trainer.models.base_model import resolve_base

    tiny = resolve_base("tiny")  # built into the model cache if it is not there yet
    rank = doppel_config(images, out).request.rank
    return [f"--pretrained_model_name_or_path={tiny.location}", f"--instance_data_dir={images}",
            f"--instance_prompt=photo of {TOKEN}", f"--output_dir={out}", f"--resolution={tiny.train_resolution}",
            f"--max_sequence_length={tiny.max_sequence_length}", f"--rank={rank}", "--train_batch_size=1",
            "--max_train_steps=2", "--seed=0", "--report_to=tensorboard"]


def run_once(case: str, images: Path, out: Path, args: argparse.Namespace) -> tuple[float, float]:
    """One run in a fresh process: (wall seconds, CPU seconds) from its start to its first step."""
    environment = dict(os.environ)
    if case == "diffusers":
        if args.torchvision:
            environment["PYTHONPATH"] = os.pathsep.join(
                [str(args.torchvision.resolve()), *filter(None, [environment.get("PYTHONPATH")])])
        command = [sys.executable, __file__, "--diffusers-one", repr(time.time()), str(args.diffusers.resolve()),
                   *diffusers_arguments(images, out)]
    else:
        command = [sys.executable, __file__, "--one", str(images), str(out), repr(time.time())]
    child = subprocess.run(command, capture_output=True, text=True, env=environment)
    if child.returncode != 0:
        raise SystemExit(f"the {case} run failed ({child.returncode}):\n{child.stderr[-3000:]}")
    wall, cpu = (float(x) for x in child.stdout.strip().splitlines()[-1].split())
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--side", type=int, default=1024, help="the photos' long side in pixels")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, interleaved; figures are medians")
    parser.add_argument("--diffusers", type=Path, metavar="SCRIPT",
                        help="diffusers' examples/dreambooth/train_dreambooth_lora_flux.py, to time it too")
    parser.add_argument("--torchvision", type=Path, metavar="DIR",
                        help="a folder holding torchvision, on the diffusers script's path only")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # child: images, out, its start time
    parser.add_argument("--diffusers-one", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # child: start, script, ..
    args = parser.parse_args()
    if args.one:
        print(*first_step(args.one[0], args.one[1], float(args.one[2])))
        return
    if args.diffusers_one:
        diffusers_first_step(args.diffusers_one[1], args.diffusers_one[2:], float(args.diffusers_one[0]))
        return
    cases = ["told", "untold"] + (["diffusers"] if args.diffusers else [])
    runs: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as scratch:
        for case in cases:
            (Path(scratch) / case).mkdir()
            write_faceless(Path(scratch) / case, args.photos, looks=case == "told", side=args.side)
        for attempt, case in itertools.product(range(args.repeats), cases):  # interleaved: the load drifts
            wall, cpu = run_once(case, Path(scratch) / case, Path(scratch) / f"{case}-out-{attempt}", args)
            runs[case].append((wall, cpu))
            print(f"{case}: {wall:.2f} s from start to the first step ({cpu:.2f} s of CPU)", flush=True)
    figures: dict[str, float] = {}
    for case, times in runs.items():
        figures[f"startup_s_{case}"] = round(statistics.median(wall for wall, _ in times), 2)
        figures[f"startup_cpu_s_{case}"] = round(statistics.median(cpu for _, cpu in times), 2)
    if args.diffusers:
        for case in ("told", "untold"):
            figures[f"ratio_{case}"] = round(figures[f"startup_cpu_s_{case}"] / figures["startup_cpu_s_diffusers"], 2)
        print(f"doppel / diffusers, CPU time to the first step: told {figures['ratio_told']}, "
              f"untold {figures['ratio_untold']} (1 or less: no slower)")
    figures["load"] = round(os.getloadavg()[0], 2)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
