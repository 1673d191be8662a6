"""Finding faces and describing them: dlib's HOG detector first, its CNN where HOG finds nothing.

HOG is fast (about 0.1 s on a 1024 px copy) but misses faces that are turned, tilted or grey (it finds
none in skimage's cameraman); the CNN finds those but takes about 1.8 s at 512 px on one core, so it
only runs where HOG found nothing, on a copy of at most 512 px.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dlib
import numpy as np
from PIL import Image

from faces.models import models

HOG_SIDE = 1024  # the long side of the copy HOG looks at
CNN_SIDE = 512  # the most the CNN looks at (its cost grows with the pixels)
# HOG's scores: a face seen from the front scores about 1.2-1.5, the astronaut's mission patch 0.13 on a
# 1024 px copy, and the cameraman (looking down) -0.46 to -0.51. A find between HOG_CANDIDATE and HOG_SURE is
# kept only if the CNN sees a face there too (the best WEAK_CHECKS of them: each check costs about 0.08 s).
HOG_SURE = 0.5
HOG_CANDIDATE = -0.8
WEAK_CHECKS = 3
CHECK_FACE_SIDE = 80  # the face's size in the CNN's check: it still finds the cameraman at 64 px, not at 50
CHECK_MARGIN = 0.25  # of the face's side, around it in the CNN's check (0.5 finds the same at twice the cost)


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the given image's pixels
    descriptor: np.ndarray = field(repr=False, compare=False)  # 128 floats; see faces.measure.distance
    detector: str  # "hog" or "cnn"

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def _detect(image: Image.Image) -> tuple[np.ndarray, list[dlib.rectangle], float, str]:
    loaded = models()
    rgb, back = _scaled(image, HOG_SIDE)
    rects, scores, _ = loaded.hog.run(rgb, 0, HOG_CANDIDATE)
    ranked = sorted(zip(scores, rects, strict=True), key=lambda pair: pair[0], reverse=True)
    weak = [rect for score, rect in ranked if score < HOG_SURE][:WEAK_CHECKS]
    found = [rect for score, rect in ranked if score >= HOG_SURE] + [rect for rect in weak if _cnn_agrees(rgb, rect)]
    if found:
        return rgb, found, back, "hog"
    rgb, back = _scaled(image, CNN_SIDE)
    with loaded.lock:
        found = [detection.rect for detection in loaded.cnn(rgb, 0)]
    return rgb, found, back, "cnn"


def _cnn_agrees(rgb: np.ndarray, rect: dlib.rectangle) -> bool:
    """Whether the CNN finds a face where HOG weakly did: it looks at the box with a margin, at a size where
    the face is CHECK_FACE_SIDE px (a tenth of a second rather than its seconds on the whole picture)."""
    side = max(rect.width(), rect.height())
    pad = round(side * CHECK_MARGIN)
    left, top = max(0, rect.left() - pad), max(0, rect.top() - pad)
    crop = Image.fromarray(rgb[top : rect.bottom() + pad, left : rect.right() + pad])
    scale = CHECK_FACE_SIDE / side
    crop = crop.resize(
        (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.Resampling.BILINEAR
    )
    loaded = models()
    with loaded.lock:
        return len(loaded.cnn(np.asarray(crop), 0)) > 0


def _scaled(image: Image.Image, long_side: int) -> tuple[np.ndarray, float]:
    """An RGB array of `image` with its long side at most `long_side`, and the factor that takes the copy's
    pixels back to the image's. Never enlarged: HOG on an enlarged copy finds faces in patterns (the
    astronaut's mission patch at 2x)."""
    rgb = image.convert("RGB")
    scale = long_side / max(rgb.size)
    if scale < 1:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(rgb), image.width / rgb.width


def find_faces(image: Image.Image) -> list[Face]:
    """Every face in `image`, largest first, each with its box in `image`'s pixels and its descriptor."""
    loaded = models()
    rgb, rects, back, detector = _detect(image)
    faces = []
    for rect in rects:
        shape = loaded.landmarks(rgb, rect)
        with loaded.lock:
            descriptor = np.asarray(loaded.recognition.compute_face_descriptor(rgb, shape), dtype=np.float32)
        box = (
            max(0, round(rect.left() * back)),
            max(0, round(rect.top() * back)),
            min(image.width, round(rect.right() * back)),
            min(image.height, round(rect.bottom() * back)),
        )
        faces.append(Face(box=box, descriptor=descriptor, detector=detector))
    return sorted(faces, key=lambda face: face.width * face.height, reverse=True)
