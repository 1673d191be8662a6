"""dlib's models, loaded once per process on first use.

The files ship inside the `face-recognition-models` package (no download at run time). That package
is found without importing it: its `__init__` imports `pkg_resources`, which setuptools 82 removed.
Only the 5-point landmark model is used: the 68-point model's training data restricts commercial use.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dlib


@dataclass(frozen=True)
class Models:
    hog: dlib.fhog_object_detector
    cnn: dlib.cnn_face_detection_model_v1
    landmarks: dlib.shape_predictor
    recognition: dlib.face_recognition_model_v1
    # The two networks keep their activations in the object: one call at a time per process.
    # (dlib holds the GIL while it computes anyway, so threads gain nothing by sharing them.)
    lock: threading.Lock


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face-recognition-models package is not installed (pip install face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


_loading = threading.Lock()


@cache
def _load() -> Models:
    folder = models_dir()
    return Models(
        hog=dlib.get_frontal_face_detector(),
        cnn=dlib.cnn_face_detection_model_v1(str(folder / "mmod_human_face_detector.dat")),
        landmarks=dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        recognition=dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
        lock=threading.Lock(),
    )


def models() -> Models:
    """The loaded models (about 0.7 s the first time in a process)."""
    with _loading:
        return _load()
