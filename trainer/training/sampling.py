"""Sample pictures during training: fixed prompts, fixed seed, so samples show only what changed."""

from __future__ import annotations

from pathlib import Path

import torch

from contract import RunLayout
from trainer.images import save_png
from trainer.training.caching import PromptEmbedding


@torch.no_grad()
def render_samples(
    pipe,
    prompts: dict[str, PromptEmbedding],
    *,
    seed: int,
    size: int,
    steps: int,
    guidance: float,
    device,
    layout: RunLayout,
    step: int,
    note: str = "",
) -> list[Path]:
    """One image per prompt, written where `layout.sample(step, k)` says."""
    # The pipeline runs where its VAE is, and decodes in the transformer's dtype (bf16 on the CPU
    # when a run asked for it there).
    vae_dtype = pipe.vae.dtype
    pipe.vae.to(device, pipe.transformer.dtype)
    try:
        paths = []
        for index, (prompt, embedding) in enumerate(prompts.items()):
            image = pipe(
                prompt_embeds=embedding.sequence.to(device, pipe.transformer.dtype),
                pooled_prompt_embeds=embedding.pooled.to(device, pipe.transformer.dtype),
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
            path = layout.sample(step, index)
            paths.append(save_png(image, path, {"prompt": prompt, "seed": seed, "step": step, "note": note}))
        return paths
    finally:
        pipe.vae.to("cpu", vae_dtype)
