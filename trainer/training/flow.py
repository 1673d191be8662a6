"""Flux's rectified-flow objective: where on the noise path to train, and the loss there."""

from __future__ import annotations

import math

import torch
from diffusers import FluxPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) latents to Flux's (B, H/2 * W/2, 4C) token sequence."""
    b, c, h, w = latents.shape
    return FluxPipeline._pack_latents(latents, b, c, h, w)


def image_ids(latents: torch.Tensor) -> torch.Tensor:
    _, _, h, w = latents.shape
    return FluxPipeline._prepare_latent_image_ids(1, h // 2, w // 2, latents.device, latents.dtype)


def sample_sigmas(batch: int, image_tokens: int, scheduler_config, generator: torch.Generator) -> torch.Tensor:
    """Noise levels in (0, 1): logit-normal, then shifted toward noise as Flux does for its resolution."""
    u = torch.sigmoid(torch.randn(batch, generator=generator))
    if scheduler_config.get("use_dynamic_shifting", False):
        mu = calculate_shift(
            image_tokens,
            scheduler_config.get("base_image_seq_len", 256),
            scheduler_config.get("max_image_seq_len", 4096),
            scheduler_config.get("base_shift", 0.5),
            scheduler_config.get("max_shift", 1.15),
        )
        return math.exp(mu) / (math.exp(mu) + (1 / u - 1))
    shift = scheduler_config.get("shift", 1.0)
    return shift * u / (1 + (shift - 1) * u)


def flow_matching_loss(
    transformer,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    pooled_embeds: torch.Tensor,
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
    target = pack(noise - latents)
    guidance_vector = None
    if transformer.config.guidance_embeds:
        guidance_vector = torch.full((latents.shape[0],), guidance, device=latents.device, dtype=torch.float32)
    prediction = transformer(
        hidden_states=pack(noisy).to(dtype),
        timestep=sigmas.to(latents.device, dtype),
        guidance=guidance_vector,
        pooled_projections=pooled_embeds.to(dtype),
        encoder_hidden_states=prompt_embeds.to(dtype),
        txt_ids=torch.zeros(prompt_embeds.shape[1], 3, device=latents.device, dtype=dtype),
        img_ids=image_ids(latents).to(dtype),
        return_dict=False,
    )[0]
    return torch.nn.functional.mse_loss(prediction.float(), target.float())
