"""Base model and adapter side by side: the same prompt and seed, with and without the member."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from contract import GenerateRequest, limits

if TYPE_CHECKING:  # the bot imports this module for LABEL_HEIGHT: no torch for it
    from trainer.generation.generator import GeneratedImage, Generator

LABEL_HEIGHT = 20


def side_by_side(left: Image.Image, right: Image.Image, labels: tuple[str, str]) -> Image.Image:
    """One picture: `left` and `right` next to each other, each with its label above it."""
    width, height = left.width + right.width, max(left.height, right.height) + LABEL_HEIGHT
    sheet = Image.new("RGB", (width, height), (32, 34, 37))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for x, image, label in ((0, left, labels[0]), (left.width, right, labels[1])):
        sheet.paste(image.convert("RGB"), (x, LABEL_HEIGHT))
        draw.text((x + 4, 4), label, fill="white", font=font)
    return sheet


def compare_pictures(
    generator: Generator,
    request: GenerateRequest,
    adapter_files: Mapping[str, Path] = MappingProxyType({}),
    on_step: Callable[[int, int], None] | None = None,
) -> GeneratedImage:
    """One picture: the base model's on the left, the request's adapters' on the right, same prompt and seed.

    Without a seed in the request a random one is picked, so both halves share it; `count` is taken as 1.
    `on_step` counts over both halves.
    """
    from trainer.generation.generator import GeneratedImage

    seed = request.seed if request.seed is not None else secrets.randbelow(limits.SEED.high + 1)
    tuned_request = dataclasses.replace(request, seed=seed, count=1, compare=False)
    base_request = dataclasses.replace(tuned_request, adapters=())
    halves = []
    for half, wanted in enumerate((base_request, tuned_request)):
        progress = None if on_step is None else _half(on_step, half)
        halves += generator.generate(wanted, adapter_files, progress)
    base, tuned = halves
    picture = side_by_side(base.image, tuned.image, ("base model", "with the adapter"))
    return GeneratedImage(picture, seed, tuned.info | {"compare": "base | adapter"})


def _half(on_step: Callable[[int, int], None], half: int) -> Callable[[int, int], None]:
    return lambda done, total: on_step(half * total + done, 2 * total)
