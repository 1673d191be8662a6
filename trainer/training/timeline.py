"""One picture of a run learning: the sample prompts at 0, 25, 50, 75 and 100 % of its steps.

A run that built on an earlier adapter starts at that adapter's step, not at 0: its first column is
where it started. Rows are the prompts (written on the left), columns the steps (labelled on top); under
each sample, its likeness to the member, and under each column the step's likeness; the recommended step
(trainer/training/likeness.py says which and why) is framed and says so.

Cells are at least CELL px: small samples (the tiny model's 64 px) are enlarged by a whole factor without
smoothing (NEAREST), so what was drawn is what is seen.

PIL only: it draws from sample files (`RunLayout.sample_files()`), whichever attempt of the run wrote them.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from trainer.training.likeness import Score, recommended, said, sample_scores, step_scores

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
CELL = 256  # the least side of a cell
HEADER = 28  # the steps' labels
UNDER = 22  # a sample's likeness, under it
FOOTER = 48  # a step's likeness, and "recommended"
PROMPTS_WIDTH = 220  # the prompts, on the left
GAP = 4
BACKGROUND = (32, 34, 37)
TEXT = (235, 235, 235)
MUTED = (150, 150, 150)
GOOD = (87, 242, 135)  # the recommended column's frame and words


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


@dataclass(frozen=True)
class Shown:
    """What a timeline shows: its columns' steps, each step's likeness (scored steps only), the recommended one."""

    steps: list[int]
    scores: dict[int, Score] = field(default_factory=dict)
    recommended: int | None = None

    @property
    def likeness(self) -> tuple[Score, ...]:
        """Per column (None where not scored or a prompt drew no face); empty when the run scored nothing."""
        return tuple(self.scores.get(s) for s in self.steps) if self.scores else ()


def choose_columns(samples: Mapping[int, Mapping[int, Path]], total_steps: int) -> Shown:
    """The columns of a run's samples up to `total_steps`, with their likeness and the recommended step."""
    steps = columns(sorted(s for s in samples if s <= total_steps), total_steps)
    scores = step_scores({s: samples[s] for s in steps})
    return Shown(steps, scores, recommended(scores, steps))


def timeline(samples: Mapping[int, Mapping[int, Path]], shown: Shown | list[int]) -> Image.Image:
    """Rows: the sample prompts; columns: `shown.steps`, labelled, with their likeness.

    `samples` is {step: {prompt index: path}}, as `RunLayout.sample_files()` finds them.
    """
    if not isinstance(shown, Shown):
        shown = Shown(list(shown))
    steps = shown.steps
    indices = sorted({index for step in steps for index in samples[step]})
    with Image.open(next(iter(samples[steps[0]].values()))) as first:
        width, height = first.size
    factor = max(1, math.ceil(CELL / min(width, height)))
    cell_w, cell_h = width * factor, height * factor
    row_h = cell_h + UNDER
    col_w = cell_w + GAP
    sheet = Image.new("RGB", (PROMPTS_WIDTH + col_w * len(steps), HEADER + row_h * len(indices) + FOOTER), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font, small = ImageFont.load_default(size=16), ImageFont.load_default(size=13)
    prompts = _prompts(samples, steps, indices)
    scores = sample_scores({step: samples[step] for step in steps})

    for row, index in enumerate(indices):
        top = HEADER + row * row_h
        wrapped = textwrap.wrap(prompts.get(index, f"prompt {index + 1}"), width=26)[: max(1, cell_h // 18)]
        draw.multiline_text((8, top + 4), "\n".join(wrapped), fill=TEXT, font=small, spacing=4)
    for column, step in enumerate(steps):
        left = PROMPTS_WIDTH + column * col_w
        draw.text((left + 4, 6), f"step {step}" + (" (start)" if column == 0 else ""), fill=TEXT, font=font)
        for row, index in enumerate(indices):
            top = HEADER + row * row_h
            path = samples[step].get(index)
            if path is not None:
                with Image.open(path) as picture:
                    enlarged = picture.convert("RGB").resize((cell_w, cell_h), Image.Resampling.NEAREST)
                sheet.paste(enlarged, (left, top))
            by_prompt = scores.get(step, {})
            if index in by_prompt:
                draw.text((left + 4, top + cell_h + 3), f"likeness {said(by_prompt[index])}", fill=MUTED, font=small)
        _footer(draw, shown, step, left, HEADER + row_h * len(indices), cell_w, font)
    if shown.recommended in steps:
        left = PROMPTS_WIDTH + steps.index(shown.recommended) * col_w
        draw.rectangle((left - 2, 2, left + cell_w + 1, sheet.height - 3), outline=GOOD, width=3)
    return sheet


def _footer(draw: ImageDraw.ImageDraw, shown: Shown, step: int, left: int, top: int, width: int, font) -> None:
    if step not in shown.scores:
        return
    score = shown.scores[step]
    words = f"score {said(score)}" if score is not None else "score: a prompt drew no face"
    draw.text((left + 4, top + 4), words, fill=TEXT, font=font)
    if step == shown.recommended:
        draw.text((left + 4, top + 24), "recommended", fill=GOOD, font=font)


def _prompts(samples: Mapping[int, Mapping[int, Path]], steps: list[int], indices: list[int]) -> dict[int, str]:
    """Each row's prompt, from the text its samples carry (`doppel:prompt`)."""
    found: dict[int, str] = {}
    for step in steps:
        for index in indices:
            path = samples[step].get(index)
            if index not in found and path is not None:
                with Image.open(path) as picture:
                    prompt = picture.info.get("doppel:prompt")
                if isinstance(prompt, str):
                    found[index] = prompt
    return found
