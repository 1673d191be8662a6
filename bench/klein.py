"""FLUX.2 [klein]: drawing with the distilled model (GENERATION_MODEL) against the base adapters are trained on.

    python bench/klein.py      # the tiny klein pair on this machine (64 px): noise, but the real step counts

Each model at its own defaults, as doppel runs it: the base (FLUX.2-klein-base-4B) at 50 steps with
classifier-free guidance 4 (two transformer passes a step), the distilled model (FLUX.2-klein-4B) at 4 steps,
guidance ignored. Both with a LoRA trained on the base, and how much that LoRA changes the distilled
model's picture (mean absolute pixel difference, 0-255). The last line holds every figure as key=value.
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

BASE_STEPS, DISTILLED_STEPS = 50, 4  # the real models' defaults (trainer/models/families/flux2_klein.py)


def main() -> None:
    import numpy as np

    from contract import AdapterRef, GenerateRequest, adapter_identity
    from tests.photos import write_photos
    from trainer.generation.generator import Generator
    from trainer.training.config import TrainConfig
    from trainer.training.train import train_lora

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        os.environ.setdefault("MODEL_CACHE_DIR", str(scratch_dir / "models"))
        trained = train_lora(TrainConfig.from_options(
            base="tiny-klein", images=write_photos(scratch_dir / "photos"), token="THGH96", out=scratch_dir / "out",
            steps=6, lr=5e-2, sample_every=0,
        ))
        lora = trained.lora_path
        ref = AdapterRef("me", adapter_identity(lora.read_bytes()))
        for name, base, steps, guidance in (("base", "tiny-klein", BASE_STEPS, 4.0),
                                            ("distilled", "tiny-klein-distilled", DISTILLED_STEPS, 1.0)):
            generator = Generator(base, device="cpu")

            def draw(*refs, generator=generator, base=base, steps=steps, guidance=guidance):
                request = GenerateRequest(base=base, prompt="photo of THGH96", adapters=refs, seed=3, steps=steps,
                                          guidance=guidance)
                started = time.perf_counter()
                image = generator.generate(request, {ref.identity: lora})[0].image
                return time.perf_counter() - started, np.asarray(image, dtype=np.int16)

            draw(ref)  # loads the adapter
            times = [draw(ref)[0] for _ in range(3)]
            figures[f"{name}_steps"] = steps
            figures[f"{name}_s_per_picture"] = round(statistics.median(times), 3)
            if name == "distilled":
                figures["lora_change_on_distilled"] = round(float(np.abs(draw(ref)[1] - draw()[1]).mean()), 2)
            print(f"{name}: {steps} steps, guidance {guidance}, {figures[f'{name}_s_per_picture']} s a picture")
    figures["speedup"] = round(figures["base_s_per_picture"] / figures["distilled_s_per_picture"], 1)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
