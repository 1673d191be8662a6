"""Pictures from a resident Flux pipeline with members' adapters switched in per request.

The base model is loaded once. Adapters are loaded by name into slots and kept,
least recently used first out, up to a limit. With hotswap on, a slot's weights
are replaced in place (`load_lora_weights(..., hotswap=True)`); this works because
every adapter is trained with the same rank and target modules.

Compiled (`compile=True`), the transformer is `torch.compile`d once with a fixed
set of LoRA slots, one per adapter a request may use, made before compiling and
padded to `hotswap_rank` (peft's `prepare_model_for_compiled_hotswap`). A request's
adapters are hotswapped into slots 1..k, their strengths folded into the weights,
and exactly those slots are activated; so switching members never changes the
graph, and nothing recompiles. Each distinct (image size, k) compiles once; the
`warm_up` at start does the common one (square, at most one adapter). Adapters
are kept on the device, least recently used first out, so a switch is a copy.
Pictures are made one at a time (batch 1) when compiled: one graph per size.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from trainer import memory
from trainer.base_model import BaseModel, load_pipeline, pick_device, pick_dtype, resolve_base
from trainer.config import FLUX_LORA_TARGETS
from trainer.dataset import round_side
from trainer.errors import DoppelError
from trainer.images import png_bytes
from trainer.tiny import NOISE_WARNING

# Width:height of each size preset; the pixel count stays near the model's resolution squared.
SIZE_PRESETS = {"square": (1, 1), "portrait": (3, 4), "landscape": (4, 3)}
MAX_IMAGES = 4
MAX_ADAPTERS_PER_REQUEST = 4

log = logging.getLogger(__name__)


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
        if max_adapters < MAX_ADAPTERS_PER_REQUEST:
            raise DoppelError(f"keep at least {MAX_ADAPTERS_PER_REQUEST} adapters loaded, not {max_adapters}")
        if offload not in (True, False, "auto"):
            raise DoppelError(f"offload must be true, false or auto, not '{offload}'")
        self.max_adapters = max_adapters
        self.hotswap_rank = hotswap_rank
        self.fp8 = fp8
        self.offload = self.device.type == "cuda" and (
            offload is True or (offload == "auto" and _too_small_for_pipeline(self.device, fp8))
        )
        if compile and self.offload:
            log.warning("not compiling the transformer: CPU offload moves it between devices on every call")
            compile = False
        self.compiled = compile
        self.hotswap = hotswap or compile
        self.pipe = pipeline if pipeline is not None else load_pipeline(self.base, pick_dtype(self.device))
        self.pipe.set_progress_bar_config(disable=True)
        if fp8:
            _fp8_transformer(self.pipe.transformer, self.device)
        if self.offload:
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # adapter name -> slot, oldest first
        self._slot_count = 0
        self._free_slots: list[str] = []  # hotswap slots whose adapter failed to load
        self._lock = threading.Lock()
        self._held: OrderedDict[str, _Held] = OrderedDict()  # compiled: adapter name -> weights on the device
        self._in_slot: list[tuple | None] = []  # compiled: what each fixed slot holds (name, version, weight)
        self._active: list[str] = []  # compiled: the slots switched on now
        self.last_switch_s = 0.0  # compiled: seconds the last request spent putting its adapters in place
        if self.compiled:
            self._compile()
        elif hotswap:
            # Must come before the first adapter is loaded: pads every slot to this rank.
            self.pipe.enable_lora_hotswap(target_rank=hotswap_rank)

    @property
    def loaded_adapters(self) -> list[str]:
        """Adapter names held now, least recently used first."""
        return list(self._held if self.compiled else self._slots)

    def forget(self, name: str) -> None:
        """Drop a member's adapter (they deleted it): unloaded, or its hotswap slot freed for the next."""
        with self._lock:
            if self.compiled:
                self._held.pop(name, None)
                for index, holding in enumerate(self._in_slot):
                    if holding is not None and holding[0] == name:
                        self._swap_into(index, None)  # no trace of it left in the weights
                return
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

        # Compiled: one picture at a time, so each size has one graph (batch 1); image k is the
        # same picture either way, made from its own seed. Progress counts over all of them.
        batches = [[s] for s in seeds] if self.compiled else [seeds]
        done = [0]

        def step_callback(pipe, index, timestep, tensors):
            if on_step is not None:
                on_step(done[0] * steps + index + 1, len(batches) * steps)
            return tensors

        with self._lock:
            if self.compiled:
                self._activate_compiled(request.adapters)
            else:
                self._activate(request.adapters)
            images = []
            for batch in batches:
                images += self.pipe(
                    prompt=request.prompt,
                    height=height,
                    width=width,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    num_images_per_prompt=len(batch),
                    generator=[torch.Generator("cpu").manual_seed(s) for s in batch],
                    max_sequence_length=self.base.max_sequence_length,
                    callback_on_step_end=step_callback,
                ).images
                done[0] += 1
        info = {
            "prompt": request.prompt,
            "base": self.base.name,
            "adapters": ", ".join(f"{a.name}:{a.weight:g}" for a in request.adapters),
            "steps": steps,
            "note": NOISE_WARNING if self.base.is_tiny else "",
        }
        return [GeneratedImage(image, s, info | {"seed": s}) for image, s in zip(images, seeds)]

    def warm_up(self, sizes: tuple[str, ...] = ("square",), steps: int = 2) -> float:
        """Make one small picture per size, so the first member's request pays no compilation.

        Compiled, this compiles the graph for each size with one adapter slot active (what a
        request with no adapter or one adapter uses). Returns the seconds it took.
        """
        started = time.perf_counter()
        for size in sizes:
            self.generate(GenerationRequest("warm-up", size=size, seed=0, steps=steps))
        return time.perf_counter() - started

    def _compile(self) -> None:
        """Fixed LoRA slots (zero weights, rank `hotswap_rank`), padded and made swappable, then torch.compile."""
        from peft import LoraConfig
        from peft.utils.hotswap import prepare_model_for_compiled_hotswap

        transformer = self.pipe.transformer
        for index in range(MAX_ADAPTERS_PER_REQUEST):
            # init_lora_weights=True makes B zero: an empty slot changes nothing.
            config = LoraConfig(r=self.hotswap_rank, lora_alpha=self.hotswap_rank, target_modules=list(FLUX_LORA_TARGETS))
            with memory.quiet_torchao_lora():
                transformer.add_adapter(config, adapter_name=_fixed_slot(index))
            self._in_slot.append(None)
        # Scalings become tensors (a new adapter's alpha/rank changes a value, not the graph).
        prepare_model_for_compiled_hotswap(transformer, target_rank=self.hotswap_rank, config=transformer.peft_config)
        self._active = [_fixed_slot(0)]
        transformer.set_adapter(self._active)
        transformer.requires_grad_(False)
        transformer.compile(fullgraph=True, dynamic=False)
        # Each (size, adapter count) is a graph of its own: 3 sizes x 4 counts must fit the cache.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 16)

    def _activate_compiled(self, adapters: tuple[AdapterUse, ...]) -> None:
        started = time.perf_counter()
        for index, use in enumerate(adapters):
            held = self._hold(use)
            wanted = (use.name, held.version, use.weight)
            if self._in_slot[index] != wanted:
                self._swap_into(index, held.scaled(use.weight), wanted)
        if not adapters and self._in_slot[0] is not None:
            self._swap_into(0, None)  # no adapter: slot 1, emptied
        active = [_fixed_slot(i) for i in range(max(1, len(adapters)))]
        if active != self._active:
            self.pipe.transformer.set_adapter(active)
            self._active = active
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.last_switch_s = time.perf_counter() - started

    def _hold(self, use: AdapterUse) -> _Held:
        """The adapter's weights on the device, read once per version; least recently used out first."""
        path = Path(use.path)
        if not path.is_file():
            raise DoppelError(f"the adapter file for '{use.name}' is missing ({path.name})")
        version = (str(path), path.stat().st_mtime_ns)
        held = self._held.get(use.name)
        if held is not None and held.version == version:
            self._held.move_to_end(use.name)
            return held
        try:
            held = _Held.read(path, version, self.device, self.pipe.transformer.dtype)
        except Exception as exc:
            raise DoppelError(f"the adapter '{use.name}' could not be loaded: {str(exc).splitlines()[0]}") from exc
        self._held[use.name] = held
        self._held.move_to_end(use.name)
        while len(self._held) > self.max_adapters:
            self._held.popitem(last=False)
        return held

    def _swap_into(self, index: int, state: dict | None, holding: tuple | None = None) -> None:
        """Replace fixed slot `index`'s weights in place (None: zeros, an empty slot)."""
        name = _fixed_slot(index)
        self._in_slot[index] = None
        try:
            if state is None:
                _zero_slot(self.pipe.transformer, name)
            else:
                self.pipe.load_lora_weights(state, adapter_name=name, hotswap=True)
        except Exception as exc:
            _zero_slot(self.pipe.transformer, name)
            who = holding[0] if holding else name
            raise DoppelError(f"the adapter '{who}' could not be loaded: {str(exc).splitlines()[0]}") from exc
        self._in_slot[index] = holding

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
            with memory.quiet_torchao_lora():
                self.pipe.load_lora_weights(str(path), adapter_name=slot_name, hotswap=reuse is not None)
        except Exception as exc:
            if reuse is not None:
                self._free_slots.append(reuse)
            raise DoppelError(f"the adapter '{use.name}' could not be loaded: {str(exc).splitlines()[0]}") from exc
        self._slots[use.name] = _Slot(slot_name, version)
        return self._slots[use.name]


@dataclass
class _Held:
    """An adapter's weights on the device, as diffusers names them, its alpha/rank folded into B."""

    version: tuple
    state: dict[str, torch.Tensor]

    @classmethod
    def read(cls, path: Path, version: tuple, device, dtype) -> _Held:
        from diffusers import FluxPipeline

        state, metadata = FluxPipeline.lora_state_dict(str(path), return_lora_metadata=True)
        if not state or not all(".lora_A." in k or ".lora_B." in k for k in state):
            raise DoppelError("it is not a LoRA adapter for the transformer")
        # diffusers keeps the adapter's LoraConfig in the header, its keys prefixed "transformer.".
        config = {k.removeprefix("transformer."): v for k, v in (metadata or {}).items()}
        if config.get("rank_pattern") or config.get("alpha_pattern"):
            raise DoppelError("adapters with per-layer ranks or alphas cannot be hotswapped")
        rank = config.get("r") or next(v.shape[0] for k, v in state.items() if ".lora_A." in k)
        alpha = config.get("lora_alpha") or rank
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        return cls(version, {k: (v * scale if ".lora_B." in k else v).to(device, dtype) for k, v in state.items()})

    def scaled(self, weight: float) -> dict[str, torch.Tensor]:
        """The weights at strength `weight` (folded into B, so the graph's scaling stays 1)."""
        if weight == 1.0:
            return dict(self.state)
        return {k: v * weight if ".lora_B." in k else v for k, v in self.state.items()}


def _fixed_slot(index: int) -> str:
    return f"fixed{index + 1}"


def _zero_slot(transformer, name: str) -> None:
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        for module in transformer.modules():
            if isinstance(module, LoraLayer) and name in module.lora_B:
                module.lora_B[name].weight.zero_()


def _too_small_for_pipeline(device, fp8: bool) -> bool:
    gib = memory.gpu_gib(device)
    return gib is not None and gib < memory.generation_gib(fp8)


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
