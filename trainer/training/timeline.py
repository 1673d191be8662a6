"""One picture of a run learning: the sample prompts at 0, 25, 50, 75 and 100 % of its steps.

A run that built on an earlier adapter starts at that adapter's step, not at 0: its first column is
where it started.

PIL only: it draws from sample files (`RunLayout.sample_files()`), whichever attempt of the run wrote them.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
LABEL_HEIGHT = 18


def columns(available: list[int], total_steps: int) -> list[int]:
    """The sampled steps nearest to each fraction of the run (from its first sample), each used once, in order."""
    chosen: list[int] = []
    first = min(available, default=0)
    for fraction in FRACTIONS:
        target = first + fraction * (total_steps - first)
        candidates = [s for s in available if s not in chosen]
        if candidates:
            chosen.append(min(candidates, key=lambda s: (abs(s - target), s)))
    return sorted(chosen)


def timeline(samples: dict[int, dict[int, Path]], steps: list[int]) -> Image.Image:
    """Rows: the sample prompts; columns: `steps` (from `columns`), labelled.

    `samples` is {step: {prompt index: path}}, as `RunLayout.sample_files()` finds them.
    """
    prompts = sorted({index for by_prompt in samples.values() for index in by_prompt})
    with Image.open(next(iter(samples[steps[0]].values()))) as first:
        width, height = first.size
    sheet = Image.new("RGB", (width * len(steps), LABEL_HEIGHT + height * len(prompts)), (32, 34, 37))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for column, step in enumerate(steps):
        draw.text((column * width + 4, 3), f"step {step}", fill="white", font=font)
        for row, index in enumerate(prompts):
            path = samples[step].get(index)
            if path is not None:
                with Image.open(path) as picture:
                    corner = (column * width, LABEL_HEIGHT + row * height)
                    sheet.paste(picture.convert("RGB").resize((width, height)), corner)
    return sheet
