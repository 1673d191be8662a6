"""The trainer's data folder: photos cropped to their buckets around the member's face."""

from __future__ import annotations

from faces import find_faces
from tests.photos import tall_portrait
from trainer.training.dataset import load_training_set


def test_a_tall_portrait_keeps_its_face_in_the_training_crop(tmp_path):
    tall_portrait().save(tmp_path / "portrait.png")
    (item,) = load_training_set(tmp_path, "THGH96", 512).images
    assert item.image.height > 1.8 * item.image.width  # a 1:2 bucket: the 1:3 picture had to lose height
    assert len(find_faces(item.image)) == 1
