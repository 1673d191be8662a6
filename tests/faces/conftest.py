"""The photos of the face tests, each looked at once per session (dlib's CNN takes seconds on a loaded CPU)."""

from __future__ import annotations

import pytest

from faces import Face, find_faces
from tests.photos import astronaut, cameraman, no_face, side_by_side, variants


@pytest.fixture(scope="session")
def astronaut_set() -> dict[str, list[Face]]:
    """The astronaut and her variants, each with the faces found in it."""
    return {name: find_faces(image) for name, image in {"original": astronaut(), **variants(astronaut())}.items()}


@pytest.fixture(scope="session")
def cameraman_faces() -> list[Face]:
    return find_faces(cameraman())


@pytest.fixture(scope="session")
def pair_faces() -> list[Face]:
    """The astronaut and the cameraman side by side."""
    return find_faces(side_by_side(astronaut(), cameraman()))


@pytest.fixture(scope="session")
def coffee_faces() -> list[Face]:
    return find_faces(no_face())
