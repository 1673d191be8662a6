"""The photos of the face tests, each looked at once per session (0.1-0.5 s of CPU each, more on a loaded machine)."""

from __future__ import annotations

import pytest

from faces.verdict import Look, look
from tests.photos import astronaut, cameraman, no_face, side_by_side, variants


@pytest.fixture(scope="session")
def astronaut_set() -> dict[str, Look]:
    """The astronaut and her variants, by name."""
    return {name: look(image) for name, image in {"original": astronaut(), **variants(astronaut())}.items()}


@pytest.fixture(scope="session")
def cameraman_look() -> Look:
    return look(cameraman())


@pytest.fixture(scope="session")
def pair_look() -> Look:
    """The astronaut and the cameraman side by side."""
    return look(side_by_side(astronaut(), cameraman()))


@pytest.fixture(scope="session")
def coffee_look() -> Look:
    return look(no_face())
