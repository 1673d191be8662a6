"""How like the member a run's samples are, and which step to recommend.

A sample's likeness is 1 - the face distance (dlib's, `faces.distance`) from the sample's face closest to the
member's identity (the medoid of their photos' faces, `faces.verdict.identity`) to that identity: 1 is the
same face, and at or above 1 - SAME_PERSON (0.4) the face is the member's by dlib's measure. A sample in which
no face is found scores None, said "no face": for a prompt that asks for the member, that is a failure too.

The score is written into the sample's PNG (text chunk `likeness`), so the timeline, the adapter's header and
the bot read it from the file, whichever attempt of the run drew it.

Which step is recommended: the one most like the member that still follows the prompts. Every sample prompt
asks for the member (each names the token), so a step follows its prompts when every one of its samples shows
a face; an adapter that has stopped following prompts and pastes a training photo still draws a face, so
likeness cannot see overfitting, which is why near-ties (within TIE) go to the earlier step: it has had fewer
steps to overfit. The first column (where the run started, before it met the member) is never recommended.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from faces import distance, find_faces

KEY = "likeness"  # the sample PNG's text chunk (`trainer.images.png_bytes` writes it as doppel:likeness)
NO_FACE = "none"  # its value when no face was found
TIE = 0.02  # likenesses closer than this are a tie: the earlier step wins

Score = float | None  # None: no face found


def likeness(image: Image.Image, identity: np.ndarray) -> Score:
    """1 - the distance of the image's face nearest the identity to it (at least 0); None when there is no face."""
    found = find_faces(image)
    if not found:
        return None
    return round(max(0.0, 1.0 - min(distance(face.descriptor, identity) for face in found)), 3)


def as_text(score: Score) -> str:
    return NO_FACE if score is None else f"{score:.3f}"


def said(score: Score) -> str:
    """A score as a person reads it."""
    return "no face" if score is None else f"{score:.2f}"


def read_score(path: Path) -> tuple[bool, Score]:
    """(whether the sample was scored, its score) from a sample PNG."""
    with Image.open(path) as image:
        text = image.info.get(f"doppel:{KEY}")
    if not isinstance(text, str):
        return False, None
    return True, None if text == NO_FACE else float(text)


def sample_scores(samples: Mapping[int, Mapping[int, Path]]) -> dict[int, dict[int, Score]]:
    """{step: {prompt index: score}} of the scored samples (`RunLayout.sample_files()`'s shape)."""
    scores: dict[int, dict[int, Score]] = {}
    for step, by_prompt in samples.items():
        for index, path in by_prompt.items():
            scored, score = read_score(path)
            if scored:
                scores.setdefault(step, {})[index] = score
    return scores


def step_score(by_prompt: Mapping[int, Score], prompts: int) -> Score:
    """A step's likeness: the mean over its prompts when every prompt's sample shows a face, else None."""
    values = [by_prompt.get(index) for index in range(prompts)]
    if not values or any(v is None for v in values):
        return None
    return round(sum(v for v in values if v is not None) / len(values), 3)


def step_scores(samples: Mapping[int, Mapping[int, Path]]) -> dict[int, Score]:
    """{step: its likeness} for the steps whose samples were scored."""
    prompts = len({index for by_prompt in samples.values() for index in by_prompt})
    return {step: step_score(by_prompt, prompts) for step, by_prompt in sample_scores(samples).items()}


def recommended(scores: Mapping[int, Score], steps: list[int]) -> int | None:
    """The step to recommend among `steps` after the first (see the module's text); None when none has a score."""
    candidates = [(scores[s], s) for s in steps[1:] if scores.get(s) is not None]
    if not candidates:
        return None
    best = max(score for score, _ in candidates if score is not None)
    return min(step for score, step in candidates if score is not None and score >= best - TIE)
