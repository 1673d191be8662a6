"""Base model and adapter side by side: the same prompt and seed, with and without the member.

With a style in the request, the other half is the request without its styles (`GenerateRequest.compared_with`):
the people as they are drawn without the style, or the base model where there are none, beside the picture
with it.

The sheet says what it shows: each half is labelled ("base model", "with THGH96": the adapter's
token from its file), the prompt is written under both, and small pictures (the tiny model's 64 px)
are enlarged without smoothing to cells of at least 256 px, so each of their pixels stays visible.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from contract import AdapterRef, GenerateRequest, limits
from contract.models import adapter_facts

if TYPE_CHECKING:  # the bot imports this module's layout (halves): no torch for it
    from trainer.generation.generator import GeneratedImage, Generator

LABEL_HEIGHT = 28  # the band of the halves' labels, above the pictures
MIN_CELL = 256  # the shorter side of each half at least, in pixels
FONT_SIZE = 16
PROMPT_LINES = 3  # the prompt under the pictures, wrapped, cut after this many lines
GAP = 4  # between the halves, so two noisy pictures do not run into one
BACKGROUND = (32, 34, 37)


def enlargement(size: tuple[int, int]) -> int:
    """The whole factor that brings a picture of `size` to cells of at least MIN_CELL px (1 when it is already)."""
    return max(1, math.ceil(MIN_CELL / min(size)))


def side_by_side(left: Image.Image, right: Image.Image, labels: tuple[str, str], prompt: str = "") -> Image.Image:
    """One picture: `left` and `right` next to each other, each with its label above it, `prompt` below.

    Both halves are enlarged by the same whole factor (`enlargement` of the left one), nearest neighbour.
    """
    factor = enlargement(left.size)
    cells = [image.convert("RGB").resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
             for image in (left, right)]
    font = _font()
    width = cells[0].width + GAP + cells[1].width
    lines = _wrapped(prompt, font, width - 8) if prompt else []
    line_height = FONT_SIZE + 4
    pictures_height = max(cell.height for cell in cells)
    sheet = Image.new("RGB", (width, LABEL_HEIGHT + pictures_height + line_height * len(lines) + 6 * bool(lines)),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    x = 0
    for cell, label in zip(cells, labels, strict=True):
        sheet.paste(cell, (x, LABEL_HEIGHT))
        draw.text((x + 6, (LABEL_HEIGHT - FONT_SIZE) // 2), _fit(label, font, cell.width - 12), fill="white",
                  font=font)
        x += cell.width + GAP
    for k, line in enumerate(lines):
        draw.text((4, LABEL_HEIGHT + pictures_height + 3 + k * line_height), line, fill=(200, 200, 200), font=font)
    return sheet


def halves(sheet: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    """The two pictures of a `side_by_side` sheet whose halves were made at `size`, as they were made."""
    factor = enlargement(size)
    width, height = size[0] * factor, size[1] * factor
    found = []
    for x in (0, width + GAP):
        cell = sheet.crop((x, LABEL_HEIGHT, x + width, LABEL_HEIGHT + height))
        found.append(cell.resize(size, Image.Resampling.NEAREST))  # picks one pixel of each block: exact
    return found[0], found[1]


def adapter_label(adapters: Sequence[AdapterRef], adapter_files: Mapping[str, Path]) -> str:
    """"with" the adapters' tokens, read from their files (`doppel.token`); a file without one by its name."""
    names = []
    for ref in adapters:
        path = adapter_files.get(ref.identity)
        # A file without a safetensors header doppel can read has no facts: the name says enough.
        token = adapter_facts(path).get("token") if path is not None and Path(path).is_file() else None
        names.append(token or ref.name)
    return "with " + " + ".join(names) if names else "with the adapter"


def compare_pictures(
    generator: Generator,
    request: GenerateRequest,
    adapter_files: Mapping[str, Path] = MappingProxyType({}),
    on_step: Callable[[int, int], None] | None = None,
    reference_files: Mapping[str, Path] = MappingProxyType({}),
) -> GeneratedImage:
    """One picture: the base model's on the left, the request's adapters' on the right, same prompt and seed.
    With styles in the request: without them on the left (`GenerateRequest.compared_with`). With reference photos
    in the request: the adapters alone on the left, adapters and photos on the right.

    Without a seed in the request a random one is picked, so both halves share it; `count` is taken as 1.
    `on_step` counts over both halves.
    """
    from trainer.generation.generator import GeneratedImage

    seed = request.seed if request.seed is not None else secrets.randbelow(limits.SEED.high + 1)
    tuned_request = dataclasses.replace(request, seed=seed, count=1, compare=False)
    with_photos = bool(request.references)
    base_request = (dataclasses.replace(tuned_request, references=()) if with_photos
                    else dataclasses.replace(tuned_request, adapters=request.compared_with))
    halves_made = []
    for half, wanted in enumerate((base_request, tuned_request)):
        progress = None if on_step is None else _half(on_step, half)
        halves_made += generator.generate(wanted, adapter_files, progress, reference_files=reference_files)
    base, tuned = halves_made
    adapters = adapter_label(request.adapters, adapter_files)
    without = adapter_label(request.compared_with, adapter_files) if request.compared_with else "base model"
    labels = (adapters, f"{adapters} + photos") if with_photos else (without, adapters)
    picture = side_by_side(base.image, tuned.image, labels, f"prompt: {request.prompt}")
    halves_said = "without the styles | with them" if request.styles else "base | adapter"
    return GeneratedImage(picture, seed, tuned.info | {"compare": halves_said, "labels": " | ".join(labels)})


def _half(on_step: Callable[[int, int], None], half: int) -> Callable[[int, int], None]:
    return lambda done, total: on_step(half * total + done, 2 * total)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (ImportError, OSError):  # a Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _fit(text: str, font, width: int) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _wrapped(text: str, font, width: int) -> list[str]:
    """`text` in lines that fit `width` pixels, at most PROMPT_LINES (the last cut with an ellipsis)."""
    per_line = max(8, int(width / max(1.0, font.getlength("abcdefghij") / 10)))
    lines = textwrap.wrap(text, per_line) or [""]
    if len(lines) > PROMPT_LINES:
        lines = [*lines[: PROMPT_LINES - 1], _fit(" ".join(lines[PROMPT_LINES - 1 :]), font, width)]
    return [_fit(line, font, width) for line in lines]
