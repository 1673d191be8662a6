"""The benchmarks' models: a real shape with random weights (FLUX.1-dev, FLUX.2 [klein] 4B) or a tiny one, built
directly on the device, and the BaseModel that runs it."""

from __future__ import annotations


def shape_of(shape_name: str, for_generation: bool = False):
    import dataclasses

    from trainer.models import tiny, tiny_klein

    if shape_name in tiny_klein.SHAPES:
        shape = tiny_klein.SHAPES[shape_name]
        if for_generation and not shape.distilled:
            steps = shape.inference_steps if shape_name.startswith("tiny") else 4
            shape = dataclasses.replace(shape, distilled=True, inference_steps=steps)
        return shape, tiny_klein.build_pipeline
    return tiny.SHAPES[shape_name], tiny.build_pipeline


def build(shape_name: str, device: str, for_generation: bool = False):
    """The shape's pipeline with random weights, made directly in bf16 on a GPU (fp32 on the CPU), in eval mode."""
    import torch

    shape, build_pipeline = shape_of(shape_name, for_generation)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # FLUX.1-dev's 12B parameters never exist in fp32
    try:
        pipe = build_pipeline(shape, device=device)  # type: ignore[arg-type]  # each builder takes its shapes
    finally:
        torch.set_default_dtype(previous)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def base_of(shape_name: str, resolution: int, image_resolution: int, for_generation: bool = False):
    from trainer.models.base_model import BaseModel
    from trainer.models.families import FAMILIES, FLUX1

    shape, _ = shape_of(shape_name, for_generation)
    family = FAMILIES.get(getattr(shape, "family", ""), FLUX1)  # FLUX.1's shapes name no family
    guidance = family.defaults({}, {"is_distilled": getattr(shape, "distilled", False)}).guidance
    return BaseModel(shape_name, shape_name, is_tiny=shape_name.startswith("tiny"), train_resolution=resolution,
                     image_resolution=image_resolution, inference_steps=shape.inference_steps, guidance=guidance,
                     max_sequence_length=shape.max_sequence_length, family=family)
