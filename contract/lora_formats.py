"""LoRA files in the key formats other tools read and write, converted and checked without torch.

doppel's adapters are diffusers' format (`transformer.<module>.lora_A/lora_B.weight`, one LoRA per diffusers
module). ComfyUI and kohya's sd-scripts name the layers as Black Forest Labs' reference code does
(`lora_unet_double_blocks_0_img_attn_qkv.lora_down/lora_up.weight` and `.alpha`), where one layer may be
several of diffusers' modules joined along their outputs (q, k and v are one `qkv`). diffusers' own loaders
read exactly that for both families (`_convert_kohya_flux_lora_to_diffusers` for FLUX.1,
`_convert_kohya_flux2_lora_to_diffusers` for FLUX.2 [klein], in diffusers/loaders/lora_conversion_utils.py);
`BFL_LAYERS` below is their table, read the other way.

A joined layer gets the modules' A matrices stacked and their B matrices block-diagonal, so that its
up @ down is each module's B @ A in its own rows and zeros elsewhere: the same weights, in ComfyUI's shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from contract.models import FACTS_PREFIX, FAMILY_TITLES
from contract.safetensors_raw import NotSafetensors, Tensor, read

COMFYUI_PREFIX = "lora_unet_"
# Uploads: a real rank-16 doppel adapter is ~171 MiB and ~1,100 tensors; full-model rank-128 LoRAs are bigger.
MAX_UPLOAD_BYTES = 1536 * 1024 * 1024
MAX_UPLOAD_TENSORS = 5000

# (BFL layer, (diffusers module, its output width in units of the block's width) ...), per block.
# The width matters only for a module a doppel adapter does not train: its rows of the joined B are zeros.
_FLUX1_DOUBLE = (
    ("img_attn_proj", (("attn.to_out.0", 1),)),
    ("img_attn_qkv", (("attn.to_q", 1), ("attn.to_k", 1), ("attn.to_v", 1))),
    ("img_mlp_0", (("ff.net.0.proj", 4),)),
    ("img_mlp_2", (("ff.net.2", 1),)),
    ("img_mod_lin", (("norm1.linear", 6),)),
    ("txt_attn_proj", (("attn.to_add_out", 1),)),
    ("txt_attn_qkv", (("attn.add_q_proj", 1), ("attn.add_k_proj", 1), ("attn.add_v_proj", 1))),
    ("txt_mlp_0", (("ff_context.net.0.proj", 4),)),
    ("txt_mlp_2", (("ff_context.net.2", 1),)),
    ("txt_mod_lin", (("norm1_context.linear", 6),)),
)
_FLUX1_SINGLE = (
    ("linear1", (("attn.to_q", 1), ("attn.to_k", 1), ("attn.to_v", 1), ("proj_mlp", 4))),
    ("linear2", (("proj_out", 1),)),
    ("modulation_lin", (("norm.linear", 3),)),
)
_KLEIN_DOUBLE = (
    ("img_attn_proj", (("attn.to_out.0", 1),)),
    ("img_attn_qkv", (("attn.to_q", 1), ("attn.to_k", 1), ("attn.to_v", 1))),
    ("txt_attn_proj", (("attn.to_add_out", 1),)),
    ("txt_attn_qkv", (("attn.add_q_proj", 1), ("attn.add_k_proj", 1), ("attn.add_v_proj", 1))),
    ("img_mlp_0", (("ff.linear_in", 6),)),
    ("img_mlp_2", (("ff.linear_out", 1),)),
    ("txt_mlp_0", (("ff_context.linear_in", 6),)),
    ("txt_mlp_2", (("ff_context.linear_out", 1),)),
)
_KLEIN_SINGLE = (
    ("linear1", (("attn.to_qkv_mlp_proj", 9),)),
    ("linear2", (("attn.to_out", 1),)),
)
_FLUX1_OTHER = {
    "img_in": "x_embedder", "txt_in": "context_embedder",
    "time_in_in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in_out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in_in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in_out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in_in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in_out_layer": "time_text_embed.guidance_embedder.linear_2",
    "final_layer_linear": "proj_out",
}
_KLEIN_OTHER = {
    "img_in": "x_embedder", "txt_in": "context_embedder",
    "time_in_in_layer": "time_guidance_embed.timestep_embedder.linear_1",
    "time_in_out_layer": "time_guidance_embed.timestep_embedder.linear_2",
    "final_layer_linear": "proj_out",
}
_BLOCKS = {
    "flux1": (_FLUX1_DOUBLE, _FLUX1_SINGLE, _FLUX1_OTHER),
    "flux2-klein": (_KLEIN_DOUBLE, _KLEIN_SINGLE, _KLEIN_OTHER),
}
_BLOCK = re.compile(r"^(double|single)_blocks_(\d+)_(.+)$")


class LoraFormatError(ValueError):
    """A LoRA file that cannot be converted or taken, in words for the person who gave it."""


def bfl_layer(family: str, name: str) -> tuple[tuple[str, int], ...] | None:
    """The diffusers modules (and widths) BFL's layer `name` (`double_blocks_0_img_attn_qkv`) joins."""
    double, single, other = _BLOCKS[family]
    match = _BLOCK.match(name)
    if match is None:
        return ((other[name], 1),) if name in other else None
    kind, index, rest = match.groups()
    prefix = "transformer_blocks" if kind == "double" else "single_transformer_blocks"
    layers = dict(double if kind == "double" else single)
    if rest not in layers:
        return None
    return tuple((f"{prefix}.{index}.{module}", width) for module, width in layers[rest])


def _bfl_layers_of(family: str, modules: Iterable[str]) -> dict[str, tuple[tuple[str, int], ...]]:
    """BFL's layers that hold any of these diffusers modules, in the order of the reference model."""
    double, single, other = _BLOCKS[family]
    wanted = set(modules)
    blocks = {(kind, int(m.split(".")[1])) for m in wanted
              for kind in (("double",) if m.startswith("transformer_blocks.") else ("single",))
              if m.startswith(("transformer_blocks.", "single_transformer_blocks."))}
    names = [f"{kind}_blocks_{i}_{layer}" for kind, i in sorted(blocks)
             for layer, _ in (double if kind == "double" else single)]
    names += list(other)
    layers = {}
    for name in names:
        members = bfl_layer(family, name)
        if members and any(m in wanted for m, _ in members):
            layers[name] = members
    return layers


@dataclass
class _Module:
    down: Tensor
    up: Tensor
    scale: float  # alpha / rank, what the LoRA's up @ down is multiplied by


def _diffusers_modules(tensors: dict[str, Tensor], metadata: dict[str, str]) -> dict[str, _Module]:
    config = json.loads(metadata.get("lora_adapter_metadata", "{}") or "{}")
    config = {k.removeprefix("transformer."): v for k, v in config.items()}
    if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("use_rslora"):
        raise LoraFormatError("adapters with per-layer ranks or alphas cannot be converted")
    modules = {}
    for key, down in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key.removeprefix("transformer.").removesuffix(".lora_A.weight")
        up = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if up is None or not key.startswith("transformer."):
            raise LoraFormatError(f"'{key}' is not a transformer LoRA weight with its B matrix")
        rank = down.shape[0]
        modules[module] = _Module(down, up, (config.get("lora_alpha") or rank) / (config.get("r") or rank))
    if not modules:
        raise LoraFormatError("the file holds no LoRA weights in diffusers' format")
    return modules


def to_comfyui(data: bytes, family: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """A doppel adapter's file (diffusers' format) as ComfyUI and kohya name it: `lora_unet_<BFL layer>`."""
    try:
        tensors, metadata = read(data)
    except NotSafetensors as exc:
        raise LoraFormatError(f"the adapter file is damaged: {exc}") from None
    modules = _diffusers_modules(tensors, metadata)
    out: dict[str, Tensor] = {}
    placed: set[str] = set()
    for name, members in _bfl_layers_of(family, modules).items():
        present = [m for m, _ in members if m in modules]
        first = modules[present[0]]
        if len({modules[m].scale for m in present}) > 1 or len({modules[m].up.dtype for m in present}) > 1:
            raise LoraFormatError(f"the modules of '{name}' differ in scale or dtype and cannot be joined")
        block_width = first.up.shape[0] // dict(members)[present[0]]
        downs = [modules[m].down.bits() for m in present]
        rank = sum(d.shape[0] for d in downs)
        up = np.zeros((sum(block_width * w if m not in modules else modules[m].up.shape[0] for m, w in members), rank),
                      dtype=first.up.bits().dtype)
        row = column = 0
        for module, width in members:
            if module in modules:
                b = modules[module].up.bits()
                up[row : row + b.shape[0], column : column + b.shape[1]] = b
                column += b.shape[1]
                row += b.shape[0]
            else:
                row += block_width * width
        out[f"{COMFYUI_PREFIX}{name}.lora_down.weight"] = Tensor.of_bits(first.down.dtype, np.concatenate(downs))
        out[f"{COMFYUI_PREFIX}{name}.lora_up.weight"] = Tensor.of_bits(first.up.dtype, up)
        out[f"{COMFYUI_PREFIX}{name}.alpha"] = Tensor.scalar_f32(first.scale * rank)  # their scale is alpha / rank
        placed.update(present)
    if missing := sorted(set(modules) - placed):
        raise LoraFormatError(f"{FAMILY_TITLES[family]} has no ComfyUI layer for {', '.join(missing[:3])}")
    kept = {k: v for k, v in metadata.items() if k.startswith(FACTS_PREFIX)}  # not diffusers' LoraConfig: ranks differ
    return out, kept | {"ss_network_module": "networks.lora_flux"} | _trigger(metadata)


def _trigger(metadata: dict[str, str]) -> dict[str, str]:
    token = metadata.get(FACTS_PREFIX + "token")
    return {"modelspec.trigger_phrase": token} if token else {}


def to_diffusers(data: bytes) -> tuple[dict[str, Tensor], dict[str, str]]:
    """A doppel adapter's file as it is (it is diffusers' format), its trigger token said where others look."""
    try:
        tensors, metadata = read(data)
    except NotSafetensors as exc:
        raise LoraFormatError(f"the adapter file is damaged: {exc}") from None
    _diffusers_modules(tensors, metadata)
    return tensors, metadata | _trigger(metadata)


# --- a member's own LoRA file ------------------------------------------------------------------------------

_PICKLE_STARTS = (b"\x80", b"PK\x03\x04")  # a pickle's protocol byte; torch.save's zip
_KINDS = {".lora_down.weight": "down", ".lora_A.weight": "down", ".lora_up.weight": "up", ".lora_B.weight": "up",
          ".alpha": "alpha"}
_FLUX1_MARKS = ("ff.net.", "proj_mlp", "norm1.linear", "_mod_lin", "modulation_lin", "vector_in", "time_text_embed")
_KLEIN_MARKS = ("ff.linear_in", "ff_context.linear_in", "to_qkv_mlp_proj", "stream_modulation", "time_guidance_embed")


@dataclass
class Upload:
    """A member's LoRA file, checked: what it is, and the header facts it will carry as theirs."""

    key_format: str  # 'diffusers', 'kohya' or 'ai-toolkit'
    family: str
    layers: int
    facts: dict[str, str] = field(default_factory=dict)


def check_upload(data: bytes, family: str, base_shapes: dict[str, tuple[int, ...]] | None) -> Upload:
    """Whether `data` is a LoRA this base (`family`, its transformer's weight shapes when known) can draw with.

    Raises LoraFormatError with the reason in the member's words. Nothing in the file is run or trusted:
    only its safetensors header is read, and its tensors' sizes checked against it."""
    title = FAMILY_TITLES[family]
    if data.startswith(_PICKLE_STARTS):
        raise LoraFormatError("That file is a pickle (a .ckpt, .pt or .bin): opening one can run any code in it, "
                              "so I never do. Send the adapter as a .safetensors file.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise LoraFormatError(f"That file is {len(data) / 2**20:.0f} MiB; I take adapters up to "
                              f"{MAX_UPLOAD_BYTES / 2**20:.0f} MiB.")
    try:
        tensors, metadata = read(data)
    except NotSafetensors as exc:
        raise LoraFormatError(f"That is not a .safetensors LoRA file: {exc}.") from None
    if len(tensors) > MAX_UPLOAD_TENSORS:
        raise LoraFormatError(f"That file has {len(tensors)} tensors; a LoRA for {title} has far fewer "
                              f"(I take up to {MAX_UPLOAD_TENSORS}).")
    layers, key_format = _layers(tensors)
    theirs = _family_of(layers, metadata)
    if theirs is not None and theirs != family:
        raise LoraFormatError(f"That adapter was made for {FAMILY_TITLES[theirs]}; I draw with {title}, whose layers "
                              "it does not fit. Send one trained on this model family.")
    for name, parts in layers.items():
        _check_layer(name, parts, key_format, family, base_shapes)
    facts = {k.removeprefix(FACTS_PREFIX): v for k, v in metadata.items() if k.startswith(FACTS_PREFIX)}
    return Upload(key_format, family, len(layers), facts)


def _layers(tensors: dict[str, Tensor]) -> tuple[dict[str, dict[str, Tensor]], str]:
    """Each layer's down, up (and alpha) tensors, by the layer's name in the file's own format."""
    layers: dict[str, dict[str, Tensor]] = {}
    formats = set()
    for key, tensor in tensors.items():
        suffix = next((s for s in _KINDS if key.endswith(s)), None)
        if suffix is None:
            raise LoraFormatError(f"Its tensor '{key}' is not part of a plain LoRA (LoKr, LoHa, DoRA and full "
                                  "weights are not taken).")
        name = key.removesuffix(suffix)
        if name.startswith("transformer."):
            formats.add("diffusers")
        elif name.startswith(COMFYUI_PREFIX):
            formats.add("kohya")
        elif name.startswith("diffusion_model."):
            formats.add("ai-toolkit")
        elif name.startswith(("lora_te", "text_encoder", "te.", "te1.", "te2.")):
            raise LoraFormatError("It also trains a text encoder; I take adapters of the transformer only.")
        else:
            raise LoraFormatError(f"I do not know its key '{key}': I take diffusers' (`transformer.`), kohya's "
                                  "(`lora_unet_`) and ai-toolkit's or ComfyUI's (`diffusion_model.`) keys.")
        layers.setdefault(name, {})[_KINDS[suffix]] = tensor
    if not layers:
        raise LoraFormatError("That file holds no LoRA weights.")
    if len(formats) > 1:
        raise LoraFormatError(f"Its keys mix {' and '.join(sorted(formats))} formats; send one of them.")
    return layers, formats.pop()


def _plain_name(name: str) -> str:
    """A layer's name without its format's prefix: a diffusers module, or BFL's layer with underscores."""
    if name.startswith("transformer."):
        return name.removeprefix("transformer.")
    return name.removeprefix(COMFYUI_PREFIX).removeprefix("diffusion_model.").replace(".", "_")


def _family_of(layers: dict[str, dict[str, Tensor]], metadata: dict[str, str]) -> str | None:
    """The family a file's layer names or widths say it was made for; None when they do not say."""
    if metadata.get(FACTS_PREFIX + "family") in FAMILY_TITLES:
        return metadata[FACTS_PREFIX + "family"]
    names = [_plain_name(n) for n in layers]
    flux1 = any(mark in n for n in names for mark in _FLUX1_MARKS)
    klein = any(mark in n for n in names for mark in _KLEIN_MARKS)
    if flux1 != klein:
        return "flux1" if flux1 else "flux2-klein"
    for name, parts in layers.items():  # BFL's single blocks' linear1: q, k, v and the MLP; its width tells
        if _plain_name(name).endswith("_linear1") and "down" in parts and "up" in parts:
            ratio = parts["up"].shape[0] / max(1, parts["down"].shape[-1])
            return {7.0: "flux1", 9.0: "flux2-klein"}.get(ratio)
    return None


def _check_layer(name: str, parts: dict[str, Tensor], key_format: str, family: str,
                 base_shapes: dict[str, tuple[int, ...]] | None) -> None:
    title = FAMILY_TITLES[family]
    down, up = parts.get("down"), parts.get("up")
    if down is None or up is None:
        raise LoraFormatError(f"Its layer '{name}' lacks its {'down (A)' if down is None else 'up (B)'} matrix.")
    if len(down.shape) != 2 or len(up.shape) != 2 or down.shape[0] != up.shape[1]:
        raise LoraFormatError(f"Its layer '{name}' has matrices of shapes {list(down.shape)} and {list(up.shape)}, "
                              "which do not make a LoRA (their ranks differ).")
    plain = _plain_name(name)
    if key_format == "diffusers":
        members: tuple[tuple[str, int], ...] | None = ((plain, 1),) if _known_module(plain, family) else None
    else:
        members = bfl_layer(family, plain)
    if members is None:
        raise LoraFormatError(f"Its layer '{name}' is not one of {title}'s.")
    if base_shapes is None:
        return
    weights = [base_shapes.get(f"{m}.weight") for m, _ in members]
    if any(w is None or len(w) != 2 for w in weights):
        raise LoraFormatError(f"Its layer '{name}' is not in this server's {title} model (it has fewer blocks).")
    want_in, want_out = weights[0][1], sum(w[0] for w in weights if w is not None)  # type: ignore[index]
    if (down.shape[1], up.shape[0]) != (want_in, want_out):
        raise LoraFormatError(f"Its layer '{name}' maps {down.shape[1]} to {up.shape[0]} features, where this "
                              f"server's {title} layer maps {want_in} to {want_out}: it was made for another size "
                              "of model, or the file is damaged.")


def _known_module(module: str, family: str) -> bool:
    double, single, other = _BLOCKS[family]
    match = re.match(r"^(transformer_blocks|single_transformer_blocks)\.\d+\.(.+)$", module)
    if match is None:
        return module in other.values()
    table = double if match.group(1) == "transformer_blocks" else single
    return any(match.group(2) == m for _, members in table for m, _ in members)


# --- export ------------------------------------------------------------------------------------------------

EXPORT_FORMATS = ("comfyui", "diffusers")


def export(data: bytes, key_format: str) -> bytes:
    """An adapter file's bytes in `key_format` ('comfyui': kohya's `lora_unet_` keys, which ComfyUI and kohya
    load; 'diffusers'), with its trigger token and base model in the header (`doppel.token`, `doppel.base_model`,
    and `modelspec.trigger_phrase`, where other tools look)."""
    from contract.safetensors_raw import encode

    try:
        tensors, metadata = read(data)
    except NotSafetensors as exc:
        raise LoraFormatError(f"the adapter file is damaged: {exc}") from None
    family = metadata.get(FACTS_PREFIX + "family", "flux1")  # adapters from before families were recorded: FLUX.1
    if family not in FAMILY_TITLES:
        raise LoraFormatError(f"the adapter is for an unknown model family '{family}'")
    if all(k.startswith((COMFYUI_PREFIX, "diffusion_model.")) for k in tensors):  # a member's own upload
        if key_format != "comfyui":
            raise LoraFormatError("this adapter came in ComfyUI's key format, so it is sent in that format only")
        return encode(tensors, metadata | _trigger(metadata))  # as it came: ComfyUI loads both of these
    if key_format not in EXPORT_FORMATS:
        raise LoraFormatError(f"unknown format '{key_format}' (known: {', '.join(EXPORT_FORMATS)})")
    return encode(*(to_comfyui(data, family) if key_format == "comfyui" else to_diffusers(data)))
