"""Pictures from a resident Flux pipeline with members' adapters switched in per request.

The base model is loaded once. Adapters are loaded by name into slots and kept,
least recently used first out, up to a limit. With hotswap on, a slot's weights
are replaced in place (`load_lora_weights(..., hotswap=True)`), so a compiled
transformer serves every adapter without recompiling; this works because every
adapter is trained with the same rank and target modules.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from trainer.base_model import BaseModel, load_pipeline, pick_device, pick_dtype, resolve_base
from trainer.dataset import round_side
from trainer.errors import DoppelError
from trainer.images import png_bytes
from trainer.tiny import NOISE_WARNING

# Width:height of each size preset; the pixel count stays near the model's resolution squared.
SIZE_PRESETS = {"square": (1, 1), "portrait": (3, 4), "landscape": (4, 3)}
MAX_IMAGES = 4
MAX_ADAPTERS_PER_REQUEST = 4


def preset_size(preset: str, resolution: int) -> tuple[int, int]:
    if preset not in SIZE_PRESETS:
        raise DoppelError(f"size must be one of {', '.join(SIZE_PRESETS)}, not '{preset}'")
    w, h = SIZE_PRESETS[preset]
    ratio = math.sqrt(w / h)
    return round_side(resolution * ratio), round_side(resolution / ratio)


@dataclass(frozen=True)
class AdapterUse:
    name: str  # who it belongs to; the cache key
    path: Path
    weight: float = 1.0


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    adapters: tuple[AdapterUse, ...] = ()
    count: int = 1
    seed: int | None = None  # None: a random one; image k gets seed + k
    size: str = "square"
    steps: int | None = None  # None: the base model's default
    guidance: float | None = None

    def validate(self) -> None:
        if not self.prompt.strip():
            raise DoppelError("the prompt is empty")
        if not 1 <= self.count <= MAX_IMAGES:
            raise DoppelError(f"you can ask for 1 to {MAX_IMAGES} images, not {self.count}")
        if len(self.adapters) > MAX_ADAPTERS_PER_REQUEST:
            raise DoppelError(f"a picture can use at most {MAX_ADAPTERS_PER_REQUEST} adapters")
        if self.seed is not None and not 0 <= self.seed < 2**32 - MAX_IMAGES:
            raise DoppelError("the seed must be a whole number from 0 to 4294967291")
        if self.steps is not None and not 1 <= self.steps <= 100:
            raise DoppelError(f"steps must be between 1 and 100, not {self.steps}")
        for use in self.adapters:
            if not -2 <= use.weight <= 2:
                raise DoppelError(f"adapter strength must be between -2 and 2, not {use.weight}")


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    seed: int
    info: dict = field(default_factory=dict)

    def png(self) -> bytes:
        return png_bytes(self.image, self.info)


@dataclass
class _Slot:
    name: str  # the peft adapter name inside the pipeline
    version: tuple  # (path, mtime) of what it holds: a retrained adapter is reloaded


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
    ):
        self.base = resolve_base(base) if isinstance(base, str) else base
        self.device = pick_device(device)
        if max_adapters < MAX_ADAPTERS_PER_REQUEST:
            raise DoppelError(f"keep at least {MAX_ADAPTERS_PER_REQUEST} adapters loaded, not {max_adapters}")
        self.max_adapters = max_adapters
        self.hotswap = hotswap
        self.pipe = pipeline if pipeline is not None else load_pipeline(self.base, pick_dtype(self.device))
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        if hotswap:
            # Must come before the first adapter is loaded: pads every slot to this rank.
            self.pipe.enable_lora_hotswap(target_rank=hotswap_rank)
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # adapter name -> slot, oldest first
        self._slot_count = 0
        self._free_slots: list[str] = []  # hotswap slots whose adapter failed to load
        self._lock = threading.Lock()

    @property
    def loaded_adapters(self) -> list[str]:
        """Adapter names held now, least recently used first."""
        return list(self._slots)

    def forget(self, name: str) -> None:
        """Drop a member's adapter (they deleted it): unloaded, or its hotswap slot freed for the next."""
        with self._lock:
            slot = self._slots.pop(name, None)
            if slot is None:
                return
            if self.hotswap:
                self._free_slots.append(slot.name)
            else:
                self.pipe.delete_adapters(slot.name)

    def generate(
        self, request: GenerationRequest, on_step: Callable[[int, int], None] | None = None
    ) -> list[GeneratedImage]:
        request.validate()
        seed = request.seed if request.seed is not None else secrets.randbelow(2**32 - MAX_IMAGES)
        seeds = [seed + k for k in range(request.count)]
        width, height = preset_size(request.size, self.base.image_resolution)
        steps = request.steps or self.base.inference_steps
        guidance = self.base.guidance if request.guidance is None else request.guidance

        def step_callback(pipe, index, timestep, tensors):
            if on_step is not None:
                on_step(index + 1, steps)
            return tensors

        with self._lock:
            self._activate(request.adapters)
            images = self.pipe(
                prompt=request.prompt,
                height=height,
                width=width,
                num_inference_steps=steps,
                guidance_scale=guidance,
                num_images_per_prompt=request.count,
                generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
                max_sequence_length=self.base.max_sequence_length,
                callback_on_step_end=step_callback,
            ).images
        info = {
            "prompt": request.prompt,
            "base": self.base.name,
            "adapters": ", ".join(f"{a.name}:{a.weight:g}" for a in request.adapters),
            "steps": steps,
            "note": NOISE_WARNING if self.base.is_tiny else "",
        }
        return [GeneratedImage(image, s, info | {"seed": s}) for image, s in zip(images, seeds)]

    def _activate(self, adapters: tuple[AdapterUse, ...]) -> None:
        if not adapters:
            if self._slot_count:  # anything ever loaded, freed hotswap slots included
                self.pipe.disable_lora()
            return
        names = {use.name for use in adapters}
        slots = [self._load(use, keep=names) for use in adapters]
        self.pipe.enable_lora()
        self.pipe.set_adapters([slot.name for slot in slots], [use.weight for use in adapters])

    def _load(self, use: AdapterUse, keep: set[str]) -> _Slot:
        path = Path(use.path)
        if not path.is_file():
            raise DoppelError(f"the adapter file for '{use.name}' is missing ({path.name})")
        version = (str(path), path.stat().st_mtime_ns)
        slot = self._slots.get(use.name)
        if slot is not None and slot.version == version:
            self._slots.move_to_end(use.name)
            return slot
        if slot is not None:  # retrained: same name, new weights, same slot
            del self._slots[use.name]
            reuse = slot.name
        elif len(self._slots) >= self.max_adapters:
            oldest = next(name for name in self._slots if name not in keep)
            reuse = self._slots.pop(oldest).name
        else:
            reuse = None
        if reuse is not None and not self.hotswap:
            self.pipe.delete_adapters(reuse)
            reuse = None
        if reuse is None and self._free_slots:
            reuse = self._free_slots.pop()
        if reuse is None:
            self._slot_count += 1
            slot_name = f"slot{self._slot_count}"
        else:
            slot_name = reuse
        try:
            self.pipe.load_lora_weights(str(path), adapter_name=slot_name, hotswap=reuse is not None)
        except Exception as exc:
            if reuse is not None:
                self._free_slots.append(reuse)
            raise DoppelError(f"the adapter '{use.name}' could not be loaded: {str(exc).splitlines()[0]}") from exc
        self._slots[use.name] = _Slot(slot_name, version)
        return self._slots[use.name]
