"""Finding faces and describing them: dlib's HOG detector proposes, its CNN confirms the weak proposals.

HOG is fast (about 0.1 s on a 1024 px copy) but unsure of faces that are turned, tilted or grey (the
cameraman, looking down, scores -0.46 to -0.75, within the range of no-face pictures' best scores); the CNN is
sure of those but takes about 1.2-1.8 s on a whole 512 px copy. So HOG, at a lenient threshold, only proposes
regions, and the CNN looks at a small crop around each of the best few (about 0.07 s each). A picture where
HOG proposes nothing, or where the CNN confirms none of the proposals, has no face: no whole-picture CNN pass,
which made a photo without a face cost 1.2-1.6 s of CPU. Measured on skimage's pictures (bench/faces.py and
the face tests): every face the whole-picture CNN found is HOG's best proposal in its picture (at -0.75 or
better), and the CNN confirms none of the proposals in 21 pictures without one (skimage's and noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dlib
import numpy as np
from PIL import Image

from faces.models import models

HOG_SIDE = 1024  # the long side of the copy HOG looks at
# HOG's scores: a face seen from the front scores about 1.2-1.5, the astronaut's mission patch 0.13 on a
# 1024 px copy, the cameraman's variants (looking down) -0.46 to -0.75, and the best proposal in a picture without
# a face -0.6 to -1.1. A find between HOG_CANDIDATE and HOG_SURE is kept only if the CNN sees a face there too:
# the best WEAK_CHECKS of them, each check about 0.07 s of CPU (4 keeps a 2048 px photo within 0.5 s). Beside a
# face HOG is sure of, only finds from HOG_BESIDE up are checked (the cameraman beside the astronaut scores -0.46):
# the lenient threshold is there not to miss a picture's only face, and checking the sure face's weaker
# neighbours would add 0.1-0.2 s to every ordinary photo.
HOG_SURE = 0.5
HOG_CANDIDATE = -1.0
HOG_BESIDE = -0.8
WEAK_CHECKS = 4
CHECK_FACE_SIDE = 80  # the face's size in the CNN's check: it still finds the cameraman at 64 px, not at 50
CHECK_MARGIN = 0.25  # of the face's side, around it in the CNN's check (0.5 finds the same at twice the cost)


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the given image's pixels
    descriptor: np.ndarray = field(repr=False, compare=False)  # 128 floats; see faces.measure.distance
    detector: str  # "hog" (HOG's find, the weak ones confirmed by the CNN); "cnn" in looks stored before

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def _detect(image: Image.Image) -> tuple[np.ndarray, list[dlib.rectangle], float]:
    loaded = models()
    rgb, back = _scaled(image, HOG_SIDE)
    rects, scores, _ = loaded.hog.run(rgb, 0, HOG_CANDIDATE)
    ranked = sorted(zip(scores, rects, strict=True), key=lambda pair: pair[0], reverse=True)
    found = [rect for score, rect in ranked if score >= HOG_SURE]
    # A proposal mostly inside a face already kept is that face again (HOG's sub-detectors each propose it).
    least = HOG_BESIDE if found else HOG_CANDIDATE
    weak = [rect for score, rect in ranked
            if least <= score < HOG_SURE and not any(_overlap(rect, kept) for kept in found)]
    for rect in weak[:WEAK_CHECKS]:
        if not any(_overlap(rect, kept) for kept in found) and _cnn_agrees(rgb, rect):
            found.append(rect)
    return rgb, found, back


def _overlap(a: dlib.rectangle, b: dlib.rectangle) -> bool:
    """Whether most of the smaller of the two lies inside the other (faces side by side touch, not more)."""
    shared = a.intersect(b)
    return not shared.is_empty() and shared.area() > 0.5 * min(a.area(), b.area())


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
    rgb, rects, back = _detect(image)
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
        faces.append(Face(box=box, descriptor=descriptor, detector="hog"))
    return sorted(faces, key=lambda face: face.width * face.height, reverse=True)
