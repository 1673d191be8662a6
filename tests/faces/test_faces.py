"""The faces core on real photographs: found, told apart, and the set's identity taken."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageFilter

from faces import SAME_PERSON, distance, face_share, identity_of, sharpness
from tests.photos import astronaut


def test_the_astronaut_is_found_in_every_variant_and_stays_herself(astronaut_set):
    assert all(len(found.faces) == 1 for found in astronaut_set.values()), {
        k: len(v.faces) for k, v in astronaut_set.items()
    }
    original = astronaut_set["original"].faces[0]
    assert original.descriptor.shape == (128,)
    left, top, right, bottom = original.box
    assert 150 < left < right < 300 and 50 < top < bottom < 200  # her face, not the mission patch below it
    for name, found in astronaut_set.items():
        assert distance(original.descriptor, found.faces[0].descriptor) <= SAME_PERSON, name


def test_the_cameraman_is_someone_else(astronaut_set, cameraman_look):
    (cameraman,) = cameraman_look.faces
    assert distance(astronaut_set["original"].faces[0].descriptor, cameraman.descriptor) > SAME_PERSON


def test_two_people_side_by_side_are_two_faces_and_none_in_coffee(pair_look, coffee_look, astronaut_set):
    assert len(pair_look.faces) == 2
    her = astronaut_set["original"].faces[0].descriptor
    nearest = min(pair_look.faces, key=lambda f: distance(f.descriptor, her))
    assert nearest.box[2] <= 512  # the astronaut is the left one
    assert coffee_look.faces == ()


def test_the_identity_is_the_medoid_and_a_stranger_does_not_move_it(astronaut_set, cameraman_look):
    descriptors = [found.faces[0].descriptor for found in astronaut_set.values()]
    identity = identity_of([*descriptors, cameraman_look.faces[0].descriptor])
    assert any(np.array_equal(identity, d) for d in descriptors)
    with pytest.raises(ValueError):
        identity_of([])


def test_blur_lowers_sharpness_and_share_is_the_face_area():
    photo = astronaut()
    assert sharpness(photo.filter(ImageFilter.GaussianBlur(3))) < sharpness(photo) / 5
    assert face_share((0, 0, 256, 256), (512, 512)) == 0.25
