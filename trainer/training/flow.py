"""The rectified-flow objective: the loss at given noise levels, the same for every family.

Where on the noise path to train (`Family.sample_sigmas`), how latents become tokens and how
the transformer is called (`Family.pack`, `Family.predict`) are the family's.
"""

from __future__ import annotations

import torch

from trainer.models.families import Family, PromptEmbedding


def flow_matching_loss(
    family: Family,
    transformer,
    latents: torch.Tensor,
    prompts: list[PromptEmbedding],
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    guidance: float,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Mean squared error of the predicted velocity (noise - data) at the given noise levels.

    `dtype` is the base weights' dtype; pass it in a loop, since `transformer.dtype`
    walks every module to find it (a millisecond a step on the tiny model).
    """
    dtype = dtype or transformer.dtype
    s = sigmas.view(-1, 1, 1, 1).to(latents.device, latents.dtype)
    noisy = (1 - s) * latents + s * noise
    target = family.pack(noise - latents)
    prediction = family.predict(transformer, noisy, sigmas, prompts, guidance, dtype)
    return torch.nn.functional.mse_loss(prediction.float(), target.float())
