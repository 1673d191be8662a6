"""FLUX.1 (dev, schnell): CLIP and T5 prompts, 16-channel latents packed 2x2, a guidance embedding on dev.

The training maths follows diffusers' examples/dreambooth/train_dreambooth_lora_flux.py.
"""

from __future__ import annotations

import math

import torch

from trainer.models import memory, tiny
from trainer.models.families.base import Defaults, Family, PromptEmbedding

# The double blocks' joint attention, named alike in FLUX.1 and FLUX.2.
ATTENTION_TARGETS = (
    "attn.to_k",
    "attn.to_q",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_k_proj",
    "attn.add_q_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
)
# Every adapter trains the same modules at the same rank, so one compiled pipeline can hotswap between them.
LORA_TARGETS = (
    *ATTENTION_TARGETS,
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)


class Flux1(Family):
    name = "flux1"
    title = "FLUX.1"
    pipeline_class_names = ("FluxPipeline",)
    transformer_class_name = "FluxTransformer2DModel"
    inpaint_class_name = "FluxInpaintPipeline"
    img2img_class_name = "FluxImg2ImgPipeline"
    largest_pixels = 2 * 2**20  # Black Forest Labs: FLUX.1 draws from 0.1 to 2 megapixels
    hub_id_hints = ("flux.1",)
    lora_targets = LORA_TARGETS
    tokenizer_folders = ("tokenizer", "tokenizer_2")  # CLIP, T5
    text_encoder_names = ("text_encoder", "text_encoder_2")
    tiny_shapes = {tiny.TINY.name: tiny.TINY}

    def model_size(self, base_name: str) -> memory.ModelSize:
        return memory.FLUX1_DEV  # dev and schnell: the same transformer

    def build_tiny(self, shape, device: str = "cpu"):
        return tiny.build_pipeline(shape, device)

    def defaults(self, transformer_config: dict, pipeline_config: dict) -> Defaults:
        if transformer_config.get("guidance_embeds", True):  # dev: guidance-distilled
            return Defaults(512, 1024, 28, 3.5, 512)
        return Defaults(512, 1024, 4, 0.0, 256)  # schnell: step-distilled, no guidance

    def encode_prompt(self, pipe, prompt: str, device, max_sequence_length: int) -> PromptEmbedding:
        sequence, pooled, _ = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=device, max_sequence_length=max_sequence_length
        )
        return PromptEmbedding(sequence, pooled)

    def prompt_arguments(self, embedding: PromptEmbedding, device, dtype) -> dict[str, torch.Tensor]:
        assert embedding.pooled is not None, "a FLUX.1 prompt has CLIP's pooled vector"  # noqa: S101  (encode_prompt sets it)
        return {
            "prompt_embeds": embedding.sequence.to(device, dtype),
            "pooled_prompt_embeds": embedding.pooled.to(device, dtype),
        }

    def encode_latents(self, vae, pixels: torch.Tensor) -> torch.Tensor:
        distribution = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
        # The mean, not a draw: Flux's VAE variance is tiny and a fixed latent keeps runs repeatable.
        return (distribution.mode() - vae.config.shift_factor) * vae.config.scaling_factor

    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, h, w = latents.shape
        return self.pipeline_class()._pack_latents(latents, b, c, h, w)

    def image_ids(self, latents: torch.Tensor) -> torch.Tensor:
        _, _, h, w = latents.shape
        return self.pipeline_class()._prepare_latent_image_ids(1, h // 2, w // 2, latents.device, latents.dtype)

    def image_tokens(self, latents: torch.Tensor) -> int:
        return latents.shape[-2] * latents.shape[-1] // 4

    def sample_sigmas(self, batch: int, image_tokens: int, scheduler_config, generator: torch.Generator):
        """Logit-normal, then shifted toward noise as Flux does for its resolution."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

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

    def predict(self, transformer, noisy, sigmas, prompts, guidance, dtype):
        device = noisy.device
        sequence = torch.cat([p.sequence for p in prompts]).to(device, dtype)
        pooled = torch.cat([p.pooled for p in prompts if p.pooled is not None]).to(device, dtype)
        guidance_vector = None
        if transformer.config.guidance_embeds:
            guidance_vector = torch.full((noisy.shape[0],), guidance, device=device, dtype=torch.float32)
        return transformer(
            hidden_states=self.pack(noisy).to(dtype),
            timestep=sigmas.to(device, dtype),
            guidance=guidance_vector,
            pooled_projections=pooled,
            encoder_hidden_states=sequence,
            txt_ids=torch.zeros(sequence.shape[1], 3, device=device, dtype=dtype),
            img_ids=self.image_ids(noisy).to(dtype),
            return_dict=False,
        )[0]


FLUX1 = Flux1()
