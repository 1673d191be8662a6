"""Base model and adapter side by side: the same prompt and seed, with and without the member."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

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


def compare(generator, prompt: str, adapter, seed: int, size: str = "square", steps: int | None = None):
    """The base picture and the adapter's picture for `prompt` at `seed`, side by side."""
    from trainer.generate import GenerationRequest

    base = generator.generate(GenerationRequest(prompt, (), seed=seed, size=size, steps=steps))[0]
    tuned = generator.generate(GenerationRequest(prompt, (adapter,), seed=seed, size=size, steps=steps))[0]
    return side_by_side(base.image, tuned.image, ("base model", f"with {adapter.name}"))
