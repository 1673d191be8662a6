"""Encode a training set once, before the loop, so the loop touches only the transformer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainer.models import memory
from trainer.training.dataset import TrainingSet


@dataclass
class PromptEmbedding:
    sequence: torch.Tensor  # T5, (1, L, D)
    pooled: torch.Tensor  # CLIP, (1, P)


@dataclass
class CachedExample:
    name: str
    latents: torch.Tensor  # (1, 16, H/8, W/8), already shifted and scaled
    prompt: PromptEmbedding

    @property
    def bucket(self) -> tuple[int, ...]:
        return tuple(self.latents.shape[-2:])


def pixels(image) -> torch.Tensor:
    """An RGB PIL image as a (1, 3, H, W) tensor in [-1, 1]."""
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


@torch.no_grad()
def encode_prompts(pipe, prompts: list[str], device, max_sequence_length: int) -> dict[str, PromptEmbedding]:
    pipe.text_encoder.to(device)
    pipe.text_encoder_2.to(device)
    cache = {}
    for prompt in dict.fromkeys(prompts):
        sequence, pooled, _ = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=device, max_sequence_length=max_sequence_length
        )
        cache[prompt] = PromptEmbedding(sequence, pooled)
    return cache


@torch.no_grad()
def encode_latents(vae, image, device) -> torch.Tensor:
    vae.to(device)
    distribution = vae.encode(pixels(image).to(device, vae.dtype)).latent_dist
    # The mean, not a draw: Flux's VAE variance is tiny and a fixed latent keeps runs repeatable.
    return (distribution.mode() - vae.config.shift_factor) * vae.config.scaling_factor


def cache_training_set(
    pipe, training_set: TrainingSet, device, max_sequence_length: int, extra_prompts: list[str], text_device=None
) -> tuple[list[CachedExample], dict[str, PromptEmbedding]]:
    """Latents for every image; embeddings for every caption and every extra prompt.

    `text_device`: where the text encoders run, if not on `device` (the CPU, on a GPU too small for T5).
    """
    captions = [item.caption for item in training_set.images]
    prompts = encode_prompts(pipe, captions + extra_prompts, text_device or device, max_sequence_length)
    examples = [
        CachedExample(item.name, encode_latents(pipe.vae, item.image, device), prompts[item.caption])
        for item in training_set.images
    ]
    return examples, prompts


def release_encoders(pipe) -> None:
    """Move the VAE and both text encoders off the accelerator; training needs neither."""
    for module in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.to("cpu")
    memory.free_memory()
