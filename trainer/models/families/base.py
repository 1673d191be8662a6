"""What a model family must say about itself; FLUX.1 and FLUX.2 [klein] each answer it in their own module."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from trainer.errors import CannotDraw, ConfigError
from trainer.models.memory import ModelSize


@dataclass
class PromptEmbedding:
    """A prompt as the transformer reads it: the text encoder's sequence, and a pooled vector where the
    family has one (FLUX.1's CLIP; FLUX.2 [klein] has none)."""

    sequence: torch.Tensor  # (1, L, D)
    pooled: torch.Tensor | None = None  # (1, P)


@dataclass(frozen=True)
class Defaults:
    """How a base model of the family is run unless told otherwise."""

    train_resolution: int
    image_resolution: int
    inference_steps: int
    guidance: float
    max_sequence_length: int


class Family(ABC):
    name: str  # what an adapter's header records ('flux1', 'flux2-klein')
    title: str  # in words, for people
    pipeline_class_names: tuple[str, ...]  # model_index.json `_class_name`s of the family
    hub_id_hints: tuple[str, ...]  # lower-case parts of a Hub id that name the family
    lora_targets: tuple[str, ...]  # the transformer's modules every adapter of the family trains
    tokenizer_folders: tuple[str, ...]  # the tokenizers a trigger token must be checked against
    text_encoder_names: tuple[str, ...]  # the pipeline's text encoders, moved off the GPU after caching

    transformer_class_name: str  # diffusers' class of the family's transformer
    inpaint_class_name: str  # diffusers' inpainting pipeline of the family
    # diffusers' image-to-image pipeline of the family; None: the family redraws a picture another way, or cannot
    img2img_class_name: str | None = None
    largest_pixels: int = 2 * 2**20  # the most pixels a picture of the family may have (an upscale stops there)
    # Reference photos the family's pipeline can draw a person from (its `image=[...]`); 0: it cannot.
    max_references: int = 0
    # The family's offline random models by name (the keys of contract.models.TINY_FOLDERS), the base first:
    # each a shape dataclass of trainer/models/tiny.py or tiny_klein.py.
    tiny_shapes: dict[str, Any]

    # --- sizes ---------------------------------------------------------------------------------
    @abstractmethod
    def model_size(self, base_name: str) -> ModelSize:
        """The memory planner's figures for a base of this family, by its size in its name."""

    # --- the tiny random models ----------------------------------------------------------------
    @abstractmethod
    def build_tiny(self, shape: Any, device: str = "cpu") -> Any:
        """A pipeline of the family with random weights of `shape`, the same every time."""

    def write_tiny(self, name: str, folder: Path, on_stage=None) -> Path:
        """Build the tiny model `name` into `folder`, atomically, with its marker."""
        from trainer.models.tiny_build import write_built

        shape = self.tiny_shapes[name]
        return write_built(folder, shape, lambda: self.build_tiny(shape), on_stage)

    def tiny_name(self, distilled: bool = False) -> str:
        if distilled:
            raise ConfigError(f"{self.title} has no distilled tiny model")
        return next(iter(self.tiny_shapes))

    def tiny_title(self, name: str) -> str:
        """The tiny model `name` in words, for people."""
        return self.title

    # --- loading ---------------------------------------------------------------------------
    def pipeline_class(self) -> Any:
        return _diffusers(self.pipeline_class_names[0])

    def transformer_class(self) -> Any:
        return _diffusers(self.transformer_class_name)

    def inpaint_pipeline(self, pipe) -> Any:
        """An inpainting pipeline sharing `pipe`'s models (`from_pipe`: no second copy of the weights)."""
        return _diffusers(self.inpaint_class_name).from_pipe(pipe)

    def image_to_image(self, pipe, source: Image.Image) -> tuple[Any, dict[str, Any]]:
        """A pipeline drawing from `source`, sharing `pipe`'s models (`from_pipe`), and the call's arguments that
        hand it the picture. Raises, in words, where the family has no way to draw from a picture."""
        if self.img2img_class_name is None:
            raise CannotDraw(f"{self.title} cannot draw a picture from another, so there are no variations "
                                 "or upscales on this base")
        return _diffusers(self.img2img_class_name).from_pipe(pipe), {"image": source}

    @abstractmethod
    def defaults(self, transformer_config: dict, pipeline_config: dict) -> Defaults:
        """How to run a base of this family, from its transformer's config and its model_index.json."""

    def text_encoders(self, pipe) -> list[torch.nn.Module]:
        return [getattr(pipe, name) for name in self.text_encoder_names]

    # --- reference photos ------------------------------------------------------------------
    def reference_problem(self, count: int) -> str | None:
        """Why `count` reference photos cannot be drawn from, in a person's words; None when they can."""
        if count == 0:
            return None
        if self.max_references == 0:
            return f"{self.title} cannot draw a person from photos; train an adapter to draw them"
        if count > self.max_references:
            return f"{self.title} draws from at most {self.max_references} reference photos, not {count}"
        return None

    def reference_arguments(self, images: list, inpainting: bool = False) -> dict[str, Any]:
        """The pipeline call's keyword arguments for these reference photos (none: no arguments); the
        inpainting pipeline's `image` is the picture it redraws, so there they are `image_reference`."""
        problem = self.reference_problem(len(images))
        if problem is not None:
            raise ConfigError(problem)
        if not images:
            return {}
        return {"image_reference" if inpainting else "image": list(images)}

    # --- prompts and latents ---------------------------------------------------------------
    @abstractmethod
    def encode_prompt(self, pipe, prompt: str, device, max_sequence_length: int) -> PromptEmbedding: ...

    @abstractmethod
    def prompt_arguments(self, embedding: PromptEmbedding, device, dtype) -> dict[str, torch.Tensor]:
        """The pipeline call's keyword arguments for an already encoded prompt."""

    def negative_arguments(self, empty: PromptEmbedding, device, dtype) -> dict[str, torch.Tensor]:
        """The pipeline call's keyword arguments for the empty prompt where its guidance encodes one on every
        call (classifier-free guidance's negative); none where the family's pipeline never does."""
        return {}

    @abstractmethod
    def encode_latents(self, vae, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [-1, 1] to the latents the transformer denoises, unpacked (B, C, h, w)."""

    @abstractmethod
    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents to the transformer's (B, tokens, channels) sequence."""

    def image_tokens(self, latents: torch.Tensor) -> int:
        return self.pack(latents[:1, :, :, :]).shape[1]

    # --- the training objective --------------------------------------------------------------
    @abstractmethod
    def sample_sigmas(self, batch: int, image_tokens: int, scheduler_config, generator: torch.Generator):
        """Noise levels in (0, 1) for a training step: logit-normal, shifted as the family's trainer does."""

    @abstractmethod
    def predict(
        self, transformer, noisy: torch.Tensor, sigmas: torch.Tensor, prompts: list[PromptEmbedding],
        guidance: float, dtype: torch.dtype,
    ) -> torch.Tensor:
        """The transformer's packed velocity prediction for noisy (B, C, h, w) latents."""

    # --- adapters ------------------------------------------------------------------------------
    def save_lora_weights(self, directory, layers: dict[str, torch.Tensor], metadata: dict) -> None:
        """Write an adapter in diffusers' format (`pytorch_lora_weights.safetensors`, keys `transformer.*`)."""
        self.pipeline_class().save_lora_weights(
            directory, transformer_lora_layers=layers, transformer_lora_adapter_metadata=metadata
        )

    def lora_state_dict(self, path) -> tuple[dict[str, torch.Tensor], dict | None]:
        """An adapter file's weights as the family's `load_lora_weights` names them, and its LoRA config."""
        return self.pipeline_class().lora_state_dict(str(path), return_lora_metadata=True)

    def __repr__(self) -> str:
        return f"<family {self.name}>"


def _diffusers(name: str) -> Any:
    import diffusers

    return getattr(diffusers, name)
