"""Comparing faces and judging a picture: distances between descriptors, a set's identity, sharpness, face size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

# At or below this distance two descriptors are the same person: dlib's own 0.6, which our measurements
# (bench/faces.py prints them) back: the astronaut's variants (crops, mirror, brightness x0.6/x1.4, JPEG
# quality 20, 2x enlargement, blur, a 128 px face) lie within 0.29-0.40 of each other and the grey cameraman's
# (looking down, harder) within 0.56-0.59, while any astronaut against any cameraman is 0.73-0.75 apart or more.
# Between the two, 0.6 errs towards flagging: a member's own photo wrongly doubted costs a press of "Keep",
# a friend's face let through teaches the adapter the wrong person. Against the set's identity (a medoid)
# the member's photos sit nearer than these worst pairs.
SAME_PERSON = 0.6


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two face descriptors (0 the same face; dlib's scale)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def identity_of(descriptors: Sequence[np.ndarray]) -> np.ndarray:
    """The set's identity: the medoid, the descriptor with the least total distance to the others.

    A medoid rather than a mean: one friend's face among the member's photos pulls a mean towards the friend,
    while the medoid stays one of the member's own faces.
    """
    if len(descriptors) == 0:
        raise ValueError("no faces to take an identity from")
    stacked = np.stack([np.asarray(d, dtype=np.float64) for d in descriptors])
    pairwise = np.linalg.norm(stacked[:, None, :] - stacked[None, :, :], axis=-1)
    return np.asarray(descriptors[int(np.argmin(pairwise.sum(axis=1)))])


SHARPNESS_SIDE = 512  # sharpness is measured on a copy this size, so it does not depend on the resolution


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian on a grey copy with its long side at 512 px: bigger is sharper."""
    grey = image.convert("L")
    scale = SHARPNESS_SIDE / max(grey.size)
    if scale != 1:
        grey = grey.resize(
            (max(3, round(grey.width * scale)), max(3, round(grey.height * scale))), Image.Resampling.BOX
        )
    pixels = np.asarray(grey, dtype=np.float32)
    laplacian = pixels[:-2, 1:-1] + pixels[2:, 1:-1] + pixels[1:-1, :-2] + pixels[1:-1, 2:] - 4 * pixels[1:-1, 1:-1]
    return float(laplacian.var())


def face_share(box: tuple[int, int, int, int], size: tuple[int, int]) -> float:
    """How much of the frame a face box covers (0 to 1)."""
    left, top, right, bottom = box
    return max(0, right - left) * max(0, bottom - top) / max(1, size[0] * size[1])
