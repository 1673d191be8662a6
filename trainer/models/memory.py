"""How lean the frozen base transformer is made for training, and choosing that for the card at hand.

Modes (the base transformer's weights; the LoRA's own weights are always fp32):

- `fp32`: the CPU's mode. bf16 is slower there, and memory is not what limits a CPU.
- `bf16`: FLUX.1-dev as published. Needs about 27 GiB with gradient checkpointing at 512 px.
- `fp8`: every Linear of the transformer blocks stored as float8 e4m3 with one scale per
  row (torchao's `Float8WeightOnlyConfig`); each matmul runs in bf16 on the dequantized
  weight. Half of bf16's weight memory; fits a 24 GB card with gradient checkpointing.
  peft wraps those layers with its `TorchaoLoraLinear`. Works on the CPU too (tests use it).
- `nf4`: the same layers as 4-bit NormalFloat with double-quantized scales (bitsandbytes
  `Linear4bit`, QLoRA's recipe). About a quarter of bf16; fits 12 GB at 512 px.
  peft wraps them with its bitsandbytes LoRA layer. bitsandbytes 0.50 runs it on the CPU too.

Only the Linear layers inside the 19 double and 38 single blocks are quantized (99% of the
12B parameters); the embedders and the output projection stay in the compute dtype.

A mode is applied before the LoRA is added (`apply_memory_mode`); the adapter file has only
the LoRA's fp32 tensors, so it loads in a plain bf16 `FluxPipeline` whatever the mode was.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace

from contract.requests import MEMORY_MODES
from trainer.errors import DoppelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemoryMode:
    name: str
    weights: str  # what the blocks' Linear weights become, in words
    base_gib: float  # FLUX.1-dev's transformer in this mode (11.9B parameters)
    library: str | None  # the import that the mode needs
    quantized: bool  # irreversible in place: going back needs a fresh transformer
    leanness: int  # order from the most memory to the least


FP32 = MemoryMode("fp32", "fp32", 44.4, None, False, 0)
BF16 = MemoryMode("bf16", "bf16", 22.2, None, False, 1)
FP8 = MemoryMode("fp8", "float8 e4m3, per-row scales (torchao)", 11.3, "torchao", True, 2)
NF4 = MemoryMode("nf4", "4-bit NormalFloat, double-quantized scales (bitsandbytes)", 5.9, "bitsandbytes", True, 3)
MODES = {mode.name: mode for mode in (FP32, BF16, FP8, NF4)}
OVERRIDES = MEMORY_MODES  # what a request may ask for; "auto" lets the planner choose
# A mode a request may name must be one this file knows how to apply, and the other way round.
assert set(OVERRIDES) == {"auto", *MODES}, (OVERRIDES, tuple(MODES))  # noqa: S101  (tests/trainer/test_memory.py checks it too)

# --- The planner's estimates, for FLUX.1-dev with a rank-16 LoRA at batch 1 -------------------
# Tokens in a step: (resolution / 16)^2 image tokens + 512 T5 tokens (1536 at 512 px, 4608 at 1024).
# Activations kept for the backward pass, bf16, per token per block: about 25 hidden-widths
# (q, k, v, their norms and rope, attention out, the norm inputs, the 4x-wide MLP in and out)
# = 25 * 3072 * 2 B = 150 KB; 57 blocks -> 8.2 MiB per token (12 GiB at 512 px, 37 at 1024).
# With gradient checkpointing only each block's input is kept (57 * 3072 * 2 B = 0.34 MiB per
# token) plus one block recomputed with its gradients (about 3 blocks' worth, 0.45 MiB): 0.8 MiB.
# CUDA context and cuBLAS workspace, the LoRA (45M parameters: weights, gradients, AdamW state,
# 0.7 GiB in fp32) and what the caching step leaves behind; then 10% for the allocator's gaps.
FIXED_GIB = 1.5
FRAGMENTATION = 1.10


@dataclass(frozen=True)
class ModelSize:
    """What the planner needs to know of a base model; a mode's weights scale from FLUX.1-dev's in that mode."""

    name: str
    bf16_gib: float  # the transformer's weights in bf16
    activation_mib_per_token: float  # kept for the backward pass, all blocks
    checkpointed_mib_per_token: float  # with gradient checkpointing
    text_tokens: int
    # Caching runs the text encoders and the VAE on the GPU before the transformer goes there: below
    # this much memory they run on the CPU instead (slow: minutes).
    encoders_gib: float
    generation_other_gib: float  # a resident pipeline besides its transformer, with a 1024 px picture's work

    def weights_gib(self, mode: str) -> float:
        return self.bf16_gib * MODES[mode].base_gib / BF16.base_gib


# Caching runs T5-XXL (4.7B parameters, 9 GiB in bf16), CLIP and the VAE: 11 GiB. Generation holds the
# transformer, T5-XXL, CLIP and the VAE (9.4 GiB besides the transformer) and a 1024x1024 picture's
# activations and VAE decode (about 4): 13.4 GiB.
FLUX1_DEV = ModelSize("FLUX.1-dev", 22.2, 8.2, 0.8, 512, 11.0, 13.4)
# FLUX.2 [klein] 4B, from its published configs: a 3.88B-parameter transformer (5 double and 20 single
# blocks of width 3072) and Qwen3-4B (4.0B, 7.5 GiB in bf16) as the text encoder, 512 text tokens.
# Activations by the same rule as FLUX.1-dev's (25 widths per token per block): 25 blocks -> 3.7 MiB per
# token; checkpointed, 25 block inputs (0.15 MiB) and one block recomputed (0.45): 0.6 MiB. Planned, not
# yet measured on a GPU (bench/gpu.py --shape klein-4b measures it).
KLEIN_4B = ModelSize("FLUX.2 [klein] 4B", 7.2, 3.7, 0.6, 512, 8.5, 11.2)
# FLUX.2 [klein] 9B: a 9B transformer (8 double and 24 single blocks of width 4096, by the same rule 6.3
# and 0.85 MiB per token) and Qwen3-8B (8.2B, 15.3 GiB in bf16). Planned from the published parameter counts.
KLEIN_9B = ModelSize("FLUX.2 [klein] 9B", 16.8, 6.3, 0.85, 512, 16.5, 19.5)
ENCODERS_GIB = FLUX1_DEV.encoders_gib
# Which of these a base is, its family says (`Family.model_size`).

# Estimated need (GiB) = 1.1 * (weights + activations) + 1.5:
#              512 px   1024 px
#  bf16         39.5     66.5      (no checkpointing)
#  bf16 + gc    27.2     29.9
#  fp8          27.5     54.5      (no checkpointing)
#  fp8 + gc     15.3     17.9
#  nf4          21.5     48.6      (no checkpointing)
#  nf4 + gc      9.3     12.0
# So: 80 GB cards train bf16 without checkpointing at both sizes; 40-48 GB cards bf16 (with
# checkpointing at 1024, and at 512 below 39.5 GiB); 24 GB cards (22-23.6 GiB usable) fp8 with
# checkpointing; 16 GB cards fp8 at 512 if 15.3 GiB fit, else nf4; 12 GB cards nf4.
# Preference: least lossy weights first, and within a mode no checkpointing (it recomputes each
# block's forward in the backward pass: about a third more compute) before checkpointing.
PREFERENCE = (("bf16", False), ("bf16", True), ("fp8", False), ("fp8", True), ("nf4", False), ("nf4", True))


# Reference photos join every step's sequence. At inference only one block's activations live at a time: about
# 40 hidden widths per token (the fused QKV and MLP projection, attention out, the norms) = 40 * 3072 * 2 B, 0.23
# MiB a token, for FLUX.2 [klein] 4B; the 9B's 4096 width scales it by 4/3. A 512 px reference is 1024 tokens.
INFERENCE_MIB_PER_TOKEN = 0.23


def reference_tokens(references: int, side: int) -> int:
    """Tokens `references` photos of `side` pixels add to the sequence (16 px a token, as a picture's)."""
    return references * (side // 16) ** 2


def generation_gib(fp8: bool, model: ModelSize = FLUX1_DEV, references_tokens: int = 0) -> float:
    """GPU memory (GiB) a resident pipeline needs to make 1024x1024 pictures, with `references_tokens` of
    reference photos in the sequence (see `reference_tokens`)."""
    widths = 4 / 3 if model is KLEIN_9B else 1.0
    photos = references_tokens * INFERENCE_MIB_PER_TOKEN * widths / 1024
    return model.weights_gib("fp8" if fp8 else "bf16") + model.generation_other_gib + photos


@dataclass(frozen=True)
class MemoryPlan:
    mode: str
    gradient_checkpointing: bool
    eight_bit_adam: bool
    encoders_on_cpu: bool
    reason: str  # one line, for the job's first progress event
    estimate_gib: float | None = None  # what the planner expects the run to need on the GPU

    @property
    def memory_mode(self) -> MemoryMode:
        return MODES[self.mode]

    @property
    def lean(self) -> bool:
        """Planned for a card that is short of memory: nothing big may share it with the transformer."""
        return MODES[self.mode].quantized


def estimate_gib(
    mode: str, resolution: int, checkpointing: bool, batch_size: int = 1, model: ModelSize = FLUX1_DEV
) -> float:
    """GPU memory (GiB) a LoRA run on a base of this size is expected to need in this mode."""
    tokens = batch_size * ((resolution // 16) ** 2 + model.text_tokens)
    per_token = model.checkpointed_mib_per_token if checkpointing else model.activation_mib_per_token
    return round(FRAGMENTATION * (model.weights_gib(mode) + tokens * per_token / 1024) + FIXED_GIB, 1)


def available_modes() -> set[str]:
    """Modes whose library is installed here."""
    return {name for name, mode in MODES.items() if mode.library is None or importlib.util.find_spec(mode.library)}


def plan_memory(
    gpu_gib: float | None,
    resolution: int,
    override: str | None = None,
    *,
    batch_size: int = 1,
    available: set[str] | None = None,
    model: ModelSize = FLUX1_DEV,
) -> MemoryPlan:
    """Choose how to train on a GPU of `gpu_gib` (None: no GPU, the CPU trains).

    `override` (a mode name; None or "auto" lets the planner choose) is always obeyed;
    the planner still decides gradient checkpointing for it.
    """
    override = None if override in (None, "", "auto") else override
    if override is not None and override not in MODES:
        raise DoppelError(f"memory mode must be one of {', '.join(OVERRIDES)}, not '{override}'")
    available = available_modes() if available is None else set(available)
    if override is not None and override not in available:
        raise DoppelError(f"memory mode {override} needs {MODES[override].library}: pip install 'doppel[gpu]'")
    eight_bit_possible = gpu_gib is not None and "nf4" in available  # both need bitsandbytes

    if gpu_gib is None:
        mode = override or "fp32"
        why = "asked for" if override else "no GPU: the CPU trains in fp32 (bf16 is slower there)"
        return MemoryPlan(mode, False, False, True, f"{mode} on the CPU, {why}")

    size = f"{gpu_gib:.1f} GiB GPU at {resolution} px"
    choices = [(m, gc_) for m, gc_ in PREFERENCE if m in available and (override is None or m == override)]
    if override is not None and override not in {m for m, _ in PREFERENCE}:
        choices = [(override, False), (override, True)]  # fp32 on a GPU, if someone insists
    fitting = [(m, gc_) for m, gc_ in choices if estimate_gib(m, resolution, gc_, batch_size, model) <= gpu_gib]
    mode, checkpointing = fitting[0] if fitting else choices[-1]
    need = estimate_gib(mode, resolution, checkpointing, batch_size, model)
    lean = MODES[mode].quantized
    parts = [f"{mode} base"] + (["gradient checkpointing"] if checkpointing else [])
    if lean and eight_bit_possible:
        parts.append("8-bit AdamW")
    encoders_on_cpu = gpu_gib < model.encoders_gib
    if encoders_on_cpu:
        parts.append("text encoders on the CPU")
    if override is not None:
        verdict = "as asked"
    elif not fitting:
        verdict = "the leanest mode, and it may still not fit: try a lower resolution"
    else:
        verdict = "the least lossy, fastest mode that fits"
    reason = f"{' + '.join(parts)}: {verdict} ({size}, about {need:g} GiB needed)"
    return MemoryPlan(mode, checkpointing, lean and eight_bit_possible, encoders_on_cpu, reason, need)


def gpu_gib(device) -> float | None:
    """Total memory of the device in GiB, or None when it is not a CUDA GPU."""
    import torch

    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(device).total_memory / 2**30


def keep_held(plan: MemoryPlan, held: str) -> MemoryPlan:
    """The plan, adjusted to a transformer already quantized to a leaner mode (it fits, by being leaner)."""
    reason = f"{held} base kept (already loaded so, and leaner than planned); " + plan.reason
    return replace(plan, mode=held, reason=reason)


# --- Applying a mode ------------------------------------------------------------------------

MODE_ATTRIBUTE = "_doppel_memory_mode"


def mode_of(transformer) -> str:
    """The mode a transformer is in now: what `apply_memory_mode` made it, or its dtype."""
    import torch

    held = getattr(transformer, MODE_ATTRIBUTE, None)
    if held:
        return held
    return "bf16" if transformer.dtype == torch.bfloat16 else "fp32"


def can_apply(transformer, mode: str) -> bool:
    """Whether `mode` can be reached in place: a quantized transformer cannot be changed again."""
    held = mode_of(transformer)
    return held == mode or not MODES[held].quantized


def apply_memory_mode(transformer, mode: str, device, compute_dtype=None):
    """Make the frozen base transformer `mode` and put it on `device`. Call BEFORE adding the LoRA.

    Quantization goes block by block, each moved to `device` first: FLUX.1-dev's bf16 blocks
    never have to fit on the card all at once. `compute_dtype` is the dtype matmuls run in
    (bf16 on a GPU, fp32 on the CPU; `bf16` mode forces bf16). Returns the compute dtype.
    """
    import torch

    spec = MODES[mode]
    if compute_dtype is None:
        compute_dtype = torch.float32 if getattr(device, "type", str(device)) == "cpu" else torch.bfloat16
    if mode == "bf16":
        compute_dtype = torch.bfloat16
    elif mode == "fp32":
        compute_dtype = torch.float32
    transformer.requires_grad_(False)
    held = mode_of(transformer)
    if held == mode:
        transformer.to(device)
        return compute_dtype
    if not can_apply(transformer, mode):
        raise DoppelError(f"the base transformer is already {held} and cannot be made {mode} in place")
    if not spec.quantized:
        transformer.to(device, compute_dtype)
    else:
        quantize = {"fp8": _fp8_block, "nf4": _nf4_block}[mode]
        for name, child in transformer.named_children():
            if name in ("transformer_blocks", "single_transformer_blocks"):
                for block in child:  # each block's old weights are freed as the next is quantized
                    block.to(compute_dtype)
                    quantize(block, device, compute_dtype)
            else:
                child.to(device, compute_dtype)
        if mode == "nf4":
            transformer.is_loaded_in_4bit = True  # as diffusers' bnb quantizer marks it: peft then uses its bnb LoRA
        free_memory()
    setattr(transformer, MODE_ATTRIBUTE, mode)
    log.info("base transformer is now %s (%s) on %s", mode, spec.weights, device)
    return compute_dtype


def _block_linears(block):
    """(parent, attribute name, Linear) for every plain Linear in a block."""
    import torch

    found = []
    for parent in block.modules():
        for name, child in parent.named_children():
            if type(child) is torch.nn.Linear:
                found.append((parent, name, child))
    return found


def _fp8_block(block, device, compute_dtype) -> None:
    from torchao.quantization import Float8WeightOnlyConfig, quantize_

    block.to(device)
    # set_inductor_config=False: leave torch's global compiler settings alone during training.
    quantize_(block, Float8WeightOnlyConfig(set_inductor_config=False))


def _nf4_block(block, device, compute_dtype) -> None:
    import bitsandbytes as bnb
    import torch

    for parent, name, linear in _block_linears(block):
        quantized = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            compute_dtype=compute_dtype,
            compress_statistics=True,  # double quantization of the scales, as QLoRA
            quant_type="nf4",
            device="meta",
        )
        quantized.weight = bnb.nn.Params4bit(
            linear.weight.data.to(compute_dtype), requires_grad=False, compress_statistics=True, quant_type="nf4"
        )
        if linear.bias is not None:
            quantized.bias = torch.nn.Parameter(linear.bias.data.to(compute_dtype), requires_grad=False)
        setattr(parent, name, quantized)
    block.to(device)  # Params4bit quantizes as it moves


@contextmanager
def quiet_torchao_lora():
    """Silence peft's warning that a LoRA on torchao weights cannot be merged: doppel never merges."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*instantiated without `get_apply_tensor_subclass`")
        yield


def on_accelerator(module) -> bool:
    parameter = next(module.parameters(), None)
    return parameter is not None and parameter.device.type != "cpu"


def free_memory() -> None:
    """Collect garbage, then empty the accelerator's cache, so what was just dropped is given back."""
    # diffusers' helper knows every accelerator torch has (CUDA, MPS, XPU, NPU); imported here
    # because importing it loads diffusers' training stack, which only a working process needs.
    from diffusers.training_utils import free_memory as diffusers_free_memory

    diffusers_free_memory()


def quantized_linear_count(transformer) -> dict[str, int]:
    """How many Linear layers of each kind the transformer's blocks have (for checks and benchmarks)."""
    counts: dict[str, int] = {}
    for module in transformer.modules():
        weight = getattr(module, "weight", None)
        if weight is None or not hasattr(module, "in_features"):
            continue
        kind = type(weight).__name__
        counts[kind] = counts.get(kind, 0) + 1
    return counts
