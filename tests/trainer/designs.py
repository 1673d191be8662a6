"""Faceless "design pictures" for a style's tests: flat shapes, a gradient and a word, drawn with PIL."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

PALETTE = ((231, 76, 60), (241, 196, 15), (46, 204, 113), (52, 152, 219), (155, 89, 182))
WORDS = ("SALE", "NEW", "BRND", "SUMMER", "HELLO", "SHOP")


def design(index: int, width: int = 96, height: int = 96) -> Image.Image:
    """A poster-like graphic in one house style (a diagonal gradient, a circle, a bar, a word), varied by index."""
    ink = PALETTE[index % len(PALETTE)]
    picture = Image.new("RGB", (width, height))
    for y in range(height):
        for x in range(0, width, 4):
            shade = (x + y) * 255 // (width + height)
            picture.paste((shade // 3, shade // 4, 60 + shade // 2), (x, y, x + 4, y + 1))
    draw = ImageDraw.Draw(picture)
    r = 12 + 4 * (index % 3)
    cx, cy = 20 + 11 * (index % 5), 24 + 7 * (index % 4)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
    draw.rectangle((0, height - 22, width, height - 14), fill=PALETTE[(index + 2) % len(PALETTE)])
    draw.text((6, height - 12), WORDS[index % len(WORDS)], fill=(255, 255, 255))
    return picture


def write_designs(folder: Path, count: int = 5) -> Path:
    """`count` design pictures (design0.png ...) in `folder`, made if missing; no captions."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        design(index).save(folder / f"design{index}.png")
    return folder
