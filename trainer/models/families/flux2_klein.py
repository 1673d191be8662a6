"""FLUX.2 [klein] (base 4B/9B, and their step-distilled models): Qwen3 prompts, 2x2-patchified latents
normalised by the VAE's BatchNorm statistics, 4-axis position ids, no guidance embedding.

The training maths follows diffusers' examples/dreambooth/train_dreambooth_lora_flux2_klein.py:
latents are patchified then normalised (`(x - bn.mean) / sqrt(bn.var + eps)`), packed to
(B, h*w, 4C) with `_prepare_latent_ids` positions, the text with `_prepare_text_ids`; the
timestep is the noise level; noise levels are logit-normal, unshifted when the scheduler
shifts dynamically at inference (as klein's does).

LoRAs are trained on a base (undistilled) model and used on the distilled one of the same
size, as ai-toolkit and Civitai pair them: the distilled model draws in about 4 steps.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from contract.models import REFERENCES_BY_PIPELINE
from trainer.models import memory, tiny_klein
from trainer.models.families.base import Defaults, Family, PromptEmbedding
from trainer.models.families.flux1 import ATTENTION_TARGETS

# The double blocks' attention and feed-forwards (as FLUX.1's list, with FLUX.2's `linear_in`/`linear_out`
# feed-forwards) and the single blocks' fused QKV+MLP projection. The single blocks' `attn.to_out` is left
# out: as a suffix it also names the double blocks' `to_out` ModuleList, which peft cannot wrap.
LORA_TARGETS = (
    *ATTENTION_TARGETS,
    "ff.linear_in",
    "ff.linear_out",
    "ff_context.linear_in",
    "ff_context.linear_out",
    "attn.to_qkv_mlp_proj",
)


class Flux2Klein(Family):
    name = "flux2-klein"
    title = "FLUX.2 [klein]"
    pipeline_class_names = ("Flux2KleinPipeline",)
    transformer_class_name = "Flux2Transformer2DModel"
    inpaint_class_name = "Flux2KleinInpaintPipeline"
    largest_pixels = 4 * 2**20  # Black Forest Labs: FLUX.2 draws up to 4 megapixels
    hub_id_hints = ("flux.2-klein", "flux2-klein")
    lora_targets = LORA_TARGETS
    tokenizer_folders = ("tokenizer",)  # Qwen's byte-level BPE
    text_encoder_names = ("text_encoder",)
    # Flux2KleinPipeline's `image=[...]`: each photo's latents join the sequence at its own time offset.
    max_references = REFERENCES_BY_PIPELINE["Flux2KleinPipeline"]
    tiny_shapes = {shape.name: shape for shape in (tiny_klein.TINY_KLEIN, tiny_klein.TINY_KLEIN_DISTILLED)}

    def model_size(self, base_name: str) -> memory.ModelSize:
        return memory.KLEIN_9B if "9b" in base_name.lower() else memory.KLEIN_4B

    def build_tiny(self, shape, device: str = "cpu"):
        return tiny_klein.build_pipeline(shape, device)

    def tiny_name(self, distilled: bool = False) -> str:
        return (tiny_klein.TINY_KLEIN_DISTILLED if distilled else tiny_klein.TINY_KLEIN).name

    def tiny_title(self, name: str) -> str:
        return f"{self.title} ({'distilled' if self.tiny_shapes[name].distilled else 'base'})"

    def image_to_image(self, pipe, source: Image.Image) -> tuple[Any, dict[str, Any]]:
        """diffusers 0.42 has no FLUX.2 [klein] image-to-image pipeline; its inpainting one with the whole picture
        masked is one: every latent is redrawn from the source noised to the strength's level."""
        whole = Image.new("L", source.size, 255)
        return self.inpaint_pipeline(pipe), {"image": source, "mask_image": whole}

    def defaults(self, transformer_config: dict, pipeline_config: dict) -> Defaults:
        if pipeline_config.get("is_distilled", False):  # FLUX.2-klein-4B/-9B: 4 steps, guidance ignored
            return Defaults(512, 1024, 4, 1.0, 512)
        return Defaults(512, 1024, 50, 4.0, 512)  # the bases: classifier-free guidance, as diffusers' example

    def encode_prompt(self, pipe, prompt: str, device, max_sequence_length: int) -> PromptEmbedding:
        sequence, _ = pipe.encode_prompt(prompt=prompt, device=device, max_sequence_length=max_sequence_length)
        return PromptEmbedding(sequence)

    def prompt_arguments(self, embedding: PromptEmbedding, device, dtype) -> dict[str, torch.Tensor]:
        return {"prompt_embeds": embedding.sequence.to(device, dtype)}

    def negative_arguments(self, empty: PromptEmbedding, device, dtype) -> dict[str, torch.Tensor]:
        # The bases' pipeline encodes "" with Qwen3 on each call for its guidance unless handed it.
        return {"negative_prompt_embeds": empty.sequence.to(device, dtype)}

    def encode_latents(self, vae, pixels: torch.Tensor) -> torch.Tensor:
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        latents = self.pipeline_class()._patchify_latents(latents)
        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(latents)
        return (latents - mean) / std

    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        return self.pipeline_class()._pack_latents(latents)

    def image_tokens(self, latents: torch.Tensor) -> int:
        return latents.shape[-2] * latents.shape[-1]

    def sample_sigmas(self, batch: int, image_tokens: int, scheduler_config, generator: torch.Generator):
        u = torch.sigmoid(torch.randn(batch, generator=generator))
        if scheduler_config.get("use_dynamic_shifting", False):
            return u  # the scheduler's training sigmas are unshifted then, as the example samples them
        shift = scheduler_config.get("shift", 1.0)
        return shift * u / (1 + (shift - 1) * u)

    def predict(self, transformer, noisy, sigmas, prompts, guidance, dtype):
        pipeline = self.pipeline_class()
        device = noisy.device
        sequence = torch.cat([p.sequence for p in prompts]).to(device, dtype)
        packed = self.pack(noisy).to(dtype)
        guidance_vector = None
        if transformer.config.guidance_embeds:
            guidance_vector = torch.full((noisy.shape[0],), guidance, device=device, dtype=torch.float32)
        prediction = transformer(
            hidden_states=packed,
            timestep=sigmas.to(device, dtype),
            guidance=guidance_vector,
            encoder_hidden_states=sequence,
            txt_ids=pipeline._prepare_text_ids(sequence).to(device),
            img_ids=pipeline._prepare_latent_ids(noisy).to(device),
            return_dict=False,
        )[0]
        return prediction[:, : packed.shape[1]]


FLUX2_KLEIN = Flux2Klein()
