"""FLUX.2 [klein]'s reference photos: what drawing a person from 1 to 4 photos costs against drawing from none.

    python bench/references.py      # the tiny distilled klein on this machine (64 px): noise, but the real sequence

Each reference adds its tokens to every step's sequence (at half the picture's side, a quarter of its tokens:
trainer/generation/generator.py's REFERENCE_SCALE) and one VAE encode before the steps. For each count: the
median seconds of three pictures at the model's default steps, the tokens a step sees, and the memory the
planner adds for them at 1024 px (trainer/models/memory.py). The last line holds every figure as key=value.
"""

from __future__ import annotations

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

BASE = "tiny-klein-distilled"
REPEATS = 9  # taken in rounds (none, 1, 2, 3, 4, none, ...) so a busy shared CPU weighs on every count alike


def main() -> None:
    from contract import GenerateRequest, ReferenceRef, reference_identity
    from tests.photos import scene
    from trainer.generation.generator import REFERENCE_SCALE, Generator
    from trainer.models import memory
    from trainer.training.dataset import round_side

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        os.environ.setdefault("MODEL_CACHE_DIR", str(scratch_dir / "models"))
        paths = []
        for k in range(4):
            path = scratch_dir / f"photo-{k}.png"
            scene(k, 160, 128).save(path)
            paths.append(path)
        files = {reference_identity(p.read_bytes()): p for p in paths}
        refs = [ReferenceRef("me", identity) for identity in files]
        generator = Generator(BASE, device="cpu")
        picture_tokens = (generator.base.image_resolution // 16) ** 2
        tokens_seen: list[int] = []
        hook = generator.pipe.transformer.register_forward_pre_hook(
            lambda module, args, kwargs: tokens_seen.append(kwargs["hidden_states"].shape[1]), with_kwargs=True)
        generator.generate(GenerateRequest(base=BASE, prompt="warm-up", seed=0))
        side_1024 = round_side(1024 * REFERENCE_SCALE)
        print(f"{BASE}: {generator.base.image_resolution} px, {generator.base.inference_steps} steps, "
              f"references of {generator.reference_side()} px; median of {REPEATS}")
        times: dict[int, list[float]] = {count: [] for count in range(5)}
        tokens: dict[int, int] = {}
        for _ in range(REPEATS):
            for count in times:
                request = GenerateRequest(base=BASE, prompt="photo of a person", seed=3,
                                          references=tuple(refs[:count]))
                tokens_seen.clear()
                started = time.perf_counter()
                generator.generate(request, reference_files=files)
                times[count].append(time.perf_counter() - started)
                tokens[count] = max(tokens_seen)
        for count in times:
            seconds = statistics.median(times[count])
            extra_gib = (memory.generation_gib(False, memory.KLEIN_4B, memory.reference_tokens(count, side_1024))
                         - memory.generation_gib(False, memory.KLEIN_4B))
            figures[f"refs{count}_s"] = round(seconds, 3)
            figures[f"refs{count}_tokens"] = tokens[count]
            figures[f"refs{count}_klein4b_1024_extra_gib"] = round(extra_gib, 2)
            ratio = seconds / figures["refs0_s"]
            print(f"{count} reference(s): {seconds:.3f} s ({ratio:.2f}x none), {tokens[count]} image tokens a step "
                  f"(picture {picture_tokens}), +{extra_gib:.2f} GiB planned for klein 4B at 1024 px")
        hook.remove()
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
