"""A style's measure of learning, where a person's is likeness: the flow-matching loss on pictures it never trains on.

A style has no face to score, so doppel measures what the adapter is trained to do, on pictures it does not see:
a few of the style's pictures are held out of training (`held_out`), and at every sample point the training loss
is computed on them at fixed noise levels (SIGMAS) with fixed noise (seeded by the run's seed), without
gradients. The same noise and timesteps each time means the figure changes only with the adapter. While the
adapter learns what the pictures share (the style), the held-out loss falls; when it starts learning the
training pictures themselves, it stops falling or rises. The recommended step is the sampled step (after the
first) with the lowest held-out loss, near-ties (within TIE of it) going to the earlier step, which has had
fewer steps to overfit.

Why held-out loss rather than closeness of samples to the pictures in an image embedding: it needs no other
model (none ships with the installed packages for this), it measures the data rather than two sample prompts,
and a sample close to the training pictures is what overfitting looks like too.

How many: one picture in HOLD_EVERY (at least one) once a set has MIN_PICTURES; a smaller set keeps every
picture for training and gets no recommendation. Which: the names ranked by their SHA-256, so the choice does
not depend on the folder's order, survives a resume, and adding pictures moves few of them.

The loss is written into the step's sample PNGs (text chunk `heldout_loss`), so the timeline and the adapter's
header read it from the files, as they do likeness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image

from trainer.training.caching import CachedExample
from trainer.training.flow import flow_matching_loss

KEY = "heldout_loss"
MIN_PICTURES = 5  # fewer: four pictures are the least a style is learned from, so none is held out
HOLD_EVERY = 8
SIGMAS = (0.2, 0.4, 0.6, 0.8)  # noise levels spread over the path, ends left out (nothing to learn at 0, nor at 1)
TIE = 0.01  # relative: losses within 1 % of the lowest are a tie, and the earliest step wins


def held_out(names: Iterable[str]) -> set[str]:
    """The names of the pictures a style run holds out (see the module's text)."""
    names = sorted(set(names))
    if len(names) < MIN_PICTURES:
        return set()
    count = max(1, len(names) // HOLD_EVERY)
    return set(sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())[:count])


class HeldOutLoss:
    """The held-out pictures with their fixed noise: `measure(transformer)` is their mean loss now."""

    def __init__(self, family, examples: Sequence[CachedExample], seed: int, guidance: float):
        self.family, self.guidance = family, guidance
        rng = torch.Generator("cpu").manual_seed(seed + 7919)  # not the training noise's stream
        self.examples = [(e, torch.randn((len(SIGMAS), *e.latents.shape[1:]), generator=rng)) for e in examples]

    @torch.no_grad()
    def measure(self, transformer, device, dtype) -> float:
        total = 0.0
        for example, noise in self.examples:
            latents = example.latents.to(device, dtype).expand(len(SIGMAS), *example.latents.shape[1:])
            loss = flow_matching_loss(
                self.family, transformer, latents, [example.prompt] * len(SIGMAS), noise.to(device, dtype),
                torch.tensor(SIGMAS), self.guidance, dtype,
            )
            total += float(loss)
        return round(total / len(self.examples), 5)


def read_loss(path: Path) -> float | None:
    """A sample PNG's held-out loss, None when its run measured none."""
    with Image.open(path) as image:
        text = image.info.get(f"doppel:{KEY}")
    return float(text) if isinstance(text, str) else None


def step_losses(samples: Mapping[int, Mapping[int, Path]]) -> dict[int, float]:
    """{step: held-out loss} of the steps whose samples carry one (`RunLayout.sample_files()`'s shape)."""
    found = {}
    for step, by_prompt in samples.items():
        loss = next((x for x in (read_loss(p) for p in by_prompt.values()) if x is not None), None)
        if loss is not None:
            found[step] = loss
    return found


def recommended(losses: Mapping[int, float], steps: list[int]) -> int | None:
    """The step to recommend among `steps` after the first (see the module's text); None when none was measured."""
    candidates = [s for s in steps[1:] if s in losses]
    if not candidates:
        return None
    lowest = min(losses[s] for s in candidates)
    return min(s for s in candidates if losses[s] <= lowest * (1 + TIE))
