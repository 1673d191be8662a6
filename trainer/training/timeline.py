"""One picture of a run learning: the sample prompts at 0, 25, 50, 75 and 100 % of its steps.

A run that built on an earlier adapter starts at that adapter's step, not at 0: its first column is
where it started. Rows are the prompts (written on the left), columns the steps (labelled on top); under
each sample, its likeness to the member, and under each column the step's likeness (a style's: its held-out
loss, trainer/training/heldout.py); the recommended step (likeness.py and heldout.py say which and why) is
framed and says so.

The text is sized for the width Discord shows the picture at (DISCORD_WIDTH): the wider the sheet, the larger.
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

from trainer.training import heldout
from trainer.training.likeness import Score, recommended, said, sample_scores, step_scores

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
CELL = 256  # the least side of a cell
GAP = 4
# Discord shows a picture in a message about this wide: the text is sized to be READABLE px tall there.
DISCORD_WIDTH = 640
READABLE = 12
PROMPT_CHARACTERS = 14  # the prompts' column, in widths of its text's height
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
    """What a timeline shows: its columns' steps, each step's likeness (scored steps only) or, for a style, its
    held-out loss (measured steps only), and the recommended one."""

    steps: list[int]
    scores: dict[int, Score] = field(default_factory=dict)
    recommended: int | None = None
    losses: dict[int, float] = field(default_factory=dict)

    @property
    def likeness(self) -> tuple[Score, ...]:
        """Per column (None where not scored or a prompt drew no face); empty when the run scored nothing."""
        return tuple(self.scores.get(s) for s in self.steps) if self.scores else ()


def choose_columns(samples: Mapping[int, Mapping[int, Path]], total_steps: int) -> Shown:
    """The columns of a run's samples up to `total_steps`, with their likeness or held-out loss and the
    recommended step."""
    steps = columns(sorted(s for s in samples if s <= total_steps), total_steps)
    scores = step_scores({s: samples[s] for s in steps})
    if scores:
        return Shown(steps, scores, recommended(scores, steps))
    losses = heldout.step_losses({s: samples[s] for s in steps})
    return Shown(steps, recommended=heldout.recommended(losses, steps), losses=losses)


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
    at = Geometry.for_cells(len(steps), cell_w)
    row_h = cell_h + at.under
    col_w = cell_w + GAP
    sheet = Image.new("RGB", (at.prompts_width + col_w * len(steps), at.header + row_h * len(indices) + at.footer),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font, small = ImageFont.load_default(size=at.text), ImageFont.load_default(size=at.small)
    prompts = _prompts(samples, steps, indices)
    scores = sample_scores({step: samples[step] for step in steps})

    for row, index in enumerate(indices):
        top = at.header + row * row_h
        wrapped = textwrap.wrap(prompts.get(index, f"prompt {index + 1}"), width=2 * PROMPT_CHARACTERS - 2)
        lines = wrapped[: max(1, cell_h // round(at.small * 1.25))]
        draw.multiline_text((8, top + 4), "\n".join(lines), fill=TEXT, font=small, spacing=at.small // 4)
    for column, step in enumerate(steps):
        left = at.prompts_width + column * col_w
        draw.text((left + 4, at.small // 3), f"start: {step}" if column == 0 else f"step {step}", fill=TEXT, font=font)
        for row, index in enumerate(indices):
            top = at.header + row * row_h
            path = samples[step].get(index)
            if path is not None:
                with Image.open(path) as picture:
                    enlarged = picture.convert("RGB").resize((cell_w, cell_h), Image.Resampling.NEAREST)
                sheet.paste(enlarged, (left, top))
            by_prompt = scores.get(step, {})
            if index in by_prompt:
                score = by_prompt[index]
                words = said(score) if score is None else f"likeness {said(score)}"
                draw.text((left + 4, top + cell_h + 3), words, fill=MUTED, font=small)
        _footer(draw, shown, step, left, at.header + row_h * len(indices), at, font)
    if shown.recommended in steps:
        left = at.prompts_width + steps.index(shown.recommended) * col_w
        draw.rectangle((left - 2, 2, left + cell_w + 1, sheet.height - 3), outline=GOOD, width=3)
    return sheet


@dataclass(frozen=True)
class Geometry:
    """The text's sizes and the bands around the cells, for a sheet whose text reads at DISCORD_WIDTH."""

    text: int  # the steps' labels and scores
    small: int  # the prompts and each sample's likeness

    @classmethod
    def for_cells(cls, columns: int, cell_w: int) -> Geometry:
        # small * DISCORD_WIDTH / sheet width >= READABLE, where the sheet is the cells and a prompts column
        # PROMPT_CHARACTERS small-text heights wide
        cells = columns * (cell_w + GAP)
        small = math.ceil(READABLE * cells / (DISCORD_WIDTH - READABLE * PROMPT_CHARACTERS))
        return cls(text=round(small * 1.2), small=small)

    @property
    def prompts_width(self) -> int:
        return self.small * PROMPT_CHARACTERS

    @property
    def header(self) -> int:
        return round(self.text * 1.6)

    @property
    def under(self) -> int:
        return round(self.small * 1.6)

    @property
    def footer(self) -> int:
        return round(self.text * 3.2)


def _footer(draw: ImageDraw.ImageDraw, shown: Shown, step: int, left: int, top: int, at: Geometry, font) -> None:
    if step in shown.losses:
        words = f"held-out loss {shown.losses[step]:.3f}"
    elif step in shown.scores:
        score = shown.scores[step]
        words = f"score {said(score)}" if score is not None else "no face"
    else:
        return
    draw.text((left + 4, top + 4), words, fill=TEXT, font=font)
    if step == shown.recommended:
        draw.text((left + 4, top + 4 + round(at.text * 1.3)), "recommended", fill=GOOD, font=font)


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
