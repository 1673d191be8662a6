"""Sample pictures during training: fixed prompts, fixed seed, so samples show only what changed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from contract import RunLayout
from trainer.images import save_png
from trainer.models.families import PromptEmbedding, family_of_pipeline
from trainer.training import heldout, likeness


@torch.no_grad()
def draw_samples(
    pipe,
    prompts: dict[str, PromptEmbedding],
    *,
    seed: int,
    size: int,
    steps: int,
    guidance: float,
    device,
    empty: PromptEmbedding | None = None,
) -> list[Image.Image]:
    """One image per prompt, in order. `empty`: the empty prompt already encoded, for a pipeline whose guidance
    would encode it again for each image."""
    # The pipeline runs where its VAE is, and decodes in the transformer's dtype (bf16 on the CPU
    # when a run asked for it there).
    vae_dtype = pipe.vae.dtype
    family = family_of_pipeline(pipe)
    pipe.vae.to(device, pipe.transformer.dtype)
    negative = family.negative_arguments(empty, device, pipe.transformer.dtype) if empty is not None else {}
    try:
        return [
            pipe(
                **family.prompt_arguments(embedding, device, pipe.transformer.dtype),
                **negative,
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
            for embedding in prompts.values()
        ]
    finally:
        pipe.vae.to("cpu", vae_dtype)


def write_samples(
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    *,
    seed: int,
    layout: RunLayout,
    step: int,
    note: str = "",
    scores: Sequence[tuple[bool, likeness.Score]] | None = None,
    heldout_loss: float | None = None,
) -> list[Path]:
    """Each image where `layout.sample(step, k)` says, with what made it and, where scored, its likeness (a
    style's: the step's held-out loss)."""
    paths = []
    for index, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
        info = {"prompt": prompt, "seed": seed, "step": step, "note": note}
        if heldout_loss is not None:
            info[heldout.KEY] = f"{heldout_loss:.5f}"
        if scores is not None and scores[index][0]:
            info[likeness.KEY] = likeness.as_text(scores[index][1])
        paths.append(save_png(image, layout.sample(step, index), info))
    return paths


def render_samples(pipe, prompts: dict[str, PromptEmbedding], *, seed: int, size: int, steps: int, guidance: float,
                   device, layout: RunLayout, step: int, note: str = "") -> list[Path]:
    """Draw and write one image per prompt, unscored."""
    images = draw_samples(pipe, prompts, seed=seed, size=size, steps=steps, guidance=guidance, device=device)
    return write_samples(images, list(prompts), seed=seed, layout=layout, step=step, note=note)
