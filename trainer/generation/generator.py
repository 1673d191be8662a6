"""Pictures from a resident Flux pipeline with members' adapters switched in per request.

The base model is loaded once. How adapters get into it is one of two strategies
(`trainer.generation.adapters`): peft named adapters, or, compiled, fixed hotswap
slots in a `torch.compile`d transformer. Either keeps up to `max_adapters`,
least recently used first out, keyed by name and versioned by identity.
"""

from __future__ import annotations

import io
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from PIL import Image

from contract import AdapterRef, GenerateRequest, ReferenceRef, limits
from trainer.errors import CannotDraw, DoppelError
from trainer.generation.adapters import AdapterStrategy, CompiledSlots, NamedAdapters, Use
from trainer.images import png_bytes
from trainer.models import memory
from trainer.models.base_model import BaseModel, load_pipeline, pick_device, pick_dtype, resolve_base
from trainer.models.tiny_build import NOISE_WARNING
from trainer.training.dataset import SIDE_MULTIPLE, round_side

log = logging.getLogger(__name__)

NO_FILES: Mapping[str, Path] = MappingProxyType({})
# A reference photo's side, in the model's resolution: every reference adds its tokens to each step's attention,
# so half the side (a quarter of the picture's tokens) keeps four of them cheaper than one more picture; and
# one fixed size keeps a compiled transformer's shapes the same whichever photos are given.
REFERENCE_SCALE = 0.5
MIN_REFERENCE_SIDE = 64  # diffusers' Flux2ImageProcessor refuses smaller photos


def preset_size(preset: str, resolution: int) -> tuple[int, int]:
    if preset not in limits.SIZES:
        raise DoppelError(f"size must be one of {', '.join(limits.SIZES)}, not '{preset}'")
    w, h = limits.SIZES[preset]
    ratio = math.sqrt(w / h)
    return round_side(resolution * ratio), round_side(resolution / ratio)


def redraw_size(width: int, height: int, scale: int, largest_pixels: int) -> tuple[int, int]:
    """A picture's sides `scale` times longer, but never more than `largest_pixels` (the family's limit)."""
    fit = min(float(scale), math.sqrt(largest_pixels / (width * height)))
    return tuple(max(SIDE_MULTIPLE, int(side * fit) // SIDE_MULTIPLE * SIDE_MULTIPLE)  # type: ignore[return-value]
                 for side in (width, height))


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    seed: int
    info: dict = field(default_factory=dict)

    def png(self) -> bytes:
        return png_bytes(self.image, self.info)


class Generator:
    """One resident FluxPipeline; `generate` is safe to call from several threads (one at a time runs)."""

    def __init__(
        self,
        base: str | BaseModel,
        *,
        device: str | None = None,
        max_adapters: int = 8,
        hotswap: bool = False,
        hotswap_rank: int = 16,
        pipeline=None,
        compile: bool = False,
        fp8: bool = False,
        offload: bool | str = False,
    ):
        """`compile`: torch.compile the transformer, with fixed hotswapped slots (implies hotswap).
        `fp8`: the transformer blocks' Linear layers in float8 (torchao): fp8 matmuls on GPUs of
        compute capability 8.9 or more (H100, L40S, RTX 40xx), fp8 weights only elsewhere.
        `offload`: True or "auto" (when the GPU is smaller than the pipeline needs) keeps the
        models in CPU memory and moves each to the GPU while it runs (`enable_model_cpu_offload`);
        compiling is then skipped, since the moving hooks would split the graph."""
        self.base = resolve_base(base) if isinstance(base, str) else base
        self.device = pick_device(device)
        if max_adapters < limits.ADAPTERS_PER_PICTURE:
            raise DoppelError(f"keep at least {limits.ADAPTERS_PER_PICTURE} adapters loaded, not {max_adapters}")
        if offload not in (True, False, "auto"):
            raise DoppelError(f"offload must be true, false or auto, not '{offload}'")
        self.max_adapters = max_adapters
        self.fp8 = fp8
        self.offload = self.device.type == "cuda" and (
            offload is True or (offload == "auto" and _too_small_for_pipeline(self.device, fp8, self.base))
        )
        if compile and self.offload:
            log.warning("not compiling the transformer: CPU offload moves it between devices on every call")
            compile = False
        self.pipe = pipeline if pipeline is not None else load_pipeline(self.base, pick_dtype(self.device))
        self.pipe.set_progress_bar_config(disable=True)
        if fp8:
            _fp8_transformer(self.pipe.transformer, self.device)
        if self.offload:
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.adapters: AdapterStrategy = (
            CompiledSlots(self.pipe, self.device, max_adapters, hotswap_rank)
            if compile
            else NamedAdapters(self.pipe, max_adapters, hotswap, hotswap_rank)
        )
        self._lock = threading.Lock()
        self.last_switch_s = 0.0  # seconds the last request spent putting its adapters in place

    @property
    def compiled(self) -> bool:
        return isinstance(self.adapters, CompiledSlots)

    @property
    def loaded_adapters(self) -> list[str]:
        """Adapter names held now, least recently used first."""
        return self.adapters.loaded

    def holds(self, ref: AdapterRef) -> bool:
        """Whether `ref` is held at its identity: its file need not be given."""
        return self.adapters.holds(ref)

    def forget(self, name: str) -> None:
        """Drop a member's adapter (they deleted it): unloaded, or its slot freed for the next."""
        with self._lock:
            self.adapters.forget(name)

    @contextmanager
    def using(self, uses: Sequence[Use]) -> Iterator[Any]:
        """Exactly these adapters active, and the pipeline held for the block: for another pipeline on the
        same modules (a group picture's inpainting), which no other request may switch under."""
        with self._lock:
            self.adapters.activate(uses)
            yield self.pipe

    def reference_side(self) -> int:
        return max(MIN_REFERENCE_SIDE, round_side(self.base.image_resolution * REFERENCE_SCALE))

    def reference_images(self, refs: Sequence[ReferenceRef], files: Mapping[str, Path]) -> list[Image.Image]:
        """The reference photos as the pipeline takes them: square, all of one size; refused by a family
        without reference images in its words."""
        problem = self.base.family.reference_problem(len(refs))
        if problem is not None:
            raise DoppelError(problem)
        return [reference_image(files, ref, self.reference_side()) for ref in refs]

    def photo_to_edit(self, request: GenerateRequest, width: int, height: int) -> Image.Image:
        """The request's photo to edit, cropped to the picture's shape and size; refused in words by a family that
        cannot edit (no reference images)."""
        from PIL import ImageOps

        if self.base.family.max_references == 0:
            raise DoppelError(f"{self.base.family.title} cannot edit a photo; name several people to have their "
                              "faces redrawn in it instead")
        data = request.edit_photo_bytes()
        try:
            with Image.open(io.BytesIO(data or b"")) as opened:
                photo = ImageOps.exif_transpose(opened).convert("RGB")
        except (OSError, ValueError) as exc:
            raise DoppelError("the photo to edit could not be read as an image") from exc
        return ImageOps.fit(photo, (width, height), Image.Resampling.LANCZOS)

    def generate(
        self,
        request: GenerateRequest,
        adapter_files: Mapping[str, Path] = NO_FILES,
        on_step: Callable[[int, int], None] | None = None,
        source: Image.Image | None = None,
        reference_files: Mapping[str, Path] = NO_FILES,
    ) -> list[GeneratedImage]:
        """The request's pictures. `adapter_files`: identity -> file, needed for adapters not held
        at that identity. `source`: the picture `request.source` names, to draw from. `reference_files`:
        identity -> file of each reference photo.
        `request.base` and `request.compare` are the caller's to act on."""
        seed = request.seed if request.seed is not None else secrets.randbelow(limits.SEED.high + 1)
        seeds = [seed + k for k in range(request.count)]
        width, height = preset_size(request.size, self.base.image_resolution)
        steps = request.steps or self.base.inference_steps
        guidance = self.base.guidance if request.guidance is None else request.guidance
        uses = [Use(ref, adapter_files.get(ref.identity)) for ref in request.adapters]
        pipe, drawn_steps = self.pipe, steps
        picture: dict[str, Any] = {}
        if request.source is not None:
            width, height = self._redrawn_size(width, height, request.source.scale)
            pipe, picture = self._drawing_from(source, width, height)
            picture["strength"] = request.source.strength
            # The pipeline skips the steps above the strength's noise level, as diffusers counts them.
            drawn_steps = steps - int(steps - steps * request.source.strength)
        photos = self.reference_images(request.references, reference_files)
        if request.edit_photo is not None:
            photos = [self.photo_to_edit(request, width, height), *photos]  # the first image is the one edited
        references = self.base.family.reference_arguments(photos)

        # Image k is the same picture either way, made from its own seed; progress counts over all of them.
        batches = [[s] for s in seeds] if self.adapters.one_picture_at_a_time else [seeds]
        done = [0]

        def step_callback(pipe, index, timestep, tensors):
            if on_step is not None:
                on_step(done[0] * drawn_steps + index + 1, len(batches) * drawn_steps)
            return tensors

        with self._lock:
            started = time.perf_counter()
            self.adapters.activate(uses)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # the swaps are queued copies: count them in
            self.last_switch_s = time.perf_counter() - started
            images = []
            for batch in batches:
                images += pipe(
                    **picture,
                    prompt=request.prompt,
                    height=height,
                    width=width,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    num_images_per_prompt=len(batch),
                    generator=[torch.Generator("cpu").manual_seed(s) for s in batch],
                    max_sequence_length=self.base.max_sequence_length,
                    callback_on_step_end=step_callback,
                    **references,
                ).images
                done[0] += 1
        info = {
            "prompt": request.prompt,
            "base": self.base.name,
            "adapters": ", ".join(f"{a.name}:{a.weight:g}" for a in request.adapters),
            "steps": steps,
            "note": NOISE_WARNING if self.base.is_tiny else "",
        }
        if request.source is not None:
            info["drawn from"] = f"{request.source.identity} at strength {request.source.strength:g}"
        if request.references:
            info["references"] = ", ".join(r.identity for r in request.references)
        if request.edit_photo is not None:
            info["edited"] = "the given photo"
        return [GeneratedImage(image, s, info | {"seed": s}) for image, s in zip(images, seeds, strict=True)]

    def _redrawn_size(self, width: int, height: int, scale: int) -> tuple[int, int]:
        family = self.base.family
        if scale == 1:
            return width, height
        larger = redraw_size(width, height, scale, family.largest_pixels)
        if larger[0] <= width:
            raise CannotDraw(f"{family.title} draws pictures of at most {family.largest_pixels / 2**20:g} megapixels, "
                             "and these are that large already: there is no larger one to make")
        return larger

    def _drawing_from(self, source: Image.Image | None, width: int, height: int) -> tuple[Any, dict[str, Any]]:
        """The family's image-to-image pipeline on the resident models, and the arguments handing it `source`."""
        if source is None:
            raise DoppelError("the picture to draw from did not come with the request; ask again")
        pipe, picture = self.base.family.image_to_image(self.pipe, source.convert("RGB").resize((width, height),
                                                                                             Image.Resampling.LANCZOS))
        pipe.set_progress_bar_config(disable=True)
        return pipe, picture

    def warm_up(self, sizes: tuple[str, ...] = ("square",), steps: int = 2) -> float:
        """Make one small picture per size, so the first member's request pays no compilation.

        Compiled, this compiles the graph for each size with one adapter slot active (what a
        request with no adapter or one adapter uses). Returns the seconds it took.
        """
        started = time.perf_counter()
        for size in sizes:
            self.generate(GenerateRequest(base=self.base.name, prompt="warm-up", size=size, seed=0, steps=steps))
        return time.perf_counter() - started


def reference_image(files: Mapping[str, Path], ref: ReferenceRef, side: int) -> Image.Image:
    """One reference photo, centre-cropped square and scaled to `side` pixels, its EXIF turn applied."""
    from PIL import ImageOps

    path = files.get(ref.identity)
    if path is None:
        raise DoppelError(f"the reference photo {ref.identity[:12]} of {ref.name} was not given")
    try:
        with Image.open(path) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError) as exc:
        raise DoppelError(f"a reference photo of {ref.name} could not be read as an image") from exc
    return ImageOps.fit(photo, (side, side), Image.Resampling.LANCZOS)


def _too_small_for_pipeline(device, fp8: bool, base: BaseModel) -> bool:
    """Planned for the most reference photos the family takes, at the size the generator gives them."""
    gib = memory.gpu_gib(device)
    side = max(MIN_REFERENCE_SIDE, round_side(1024 * REFERENCE_SCALE))  # at the 1024 px the plan is for
    tokens = memory.reference_tokens(base.family.max_references, side)
    return gib is not None and gib < memory.generation_gib(fp8, base.family.model_size(base.name), tokens)


def _fp8_transformer(transformer, device) -> None:
    """float8 Linear weights in the transformer blocks; fp8 matmuls too where the GPU has them (sm 8.9+)."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        PerRow,
        quantize_,
    )

    fast = device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)
    config = (
        Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False)
        if fast
        else Float8WeightOnlyConfig(set_inductor_config=False)
    )
    transformer.requires_grad_(False)
    for name, child in transformer.named_children():
        if name in ("transformer_blocks", "single_transformer_blocks"):
            for block in child:
                block.to(device)  # quantized on the GPU, one block at a time
                quantize_(block, config)
    setattr(transformer, memory.MODE_ATTRIBUTE, "fp8")
