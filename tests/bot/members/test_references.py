"""Which photos a member is drawn from: one face, theirs, sharp, varied; never one left out or of someone else."""

from __future__ import annotations

import numpy as np

from bot.members import references
from bot.members.store import Photo
from faces.detect import Face
from faces.verdict import Look


def photo(number: int, faces: list[np.ndarray], sharpness: float = 500.0, kept: bool = False) -> Photo:
    boxes = [(10 + 60 * k, 10, 60 + 60 * k, 60) for k in range(len(faces))]
    look = Look((200, 200), sharpness, tuple(Face(b, d, "hog") for b, d in zip(boxes, faces, strict=True)))
    return Photo(id=number, number=number, sha256=f"{number:064d}", phash=0, path=f"/p/{number}.jpg", caption="",
                 shown_name=f"{number}.jpg", width=200, height=200, look=look.to_json(), kept=kept)


def near(member: np.ndarray, step: float, axis: int) -> np.ndarray:
    moved = member.copy()
    moved[axis] += step
    return moved


def test_references_are_the_members_sharp_single_face_photos_most_varied_first():
    her = np.zeros(128)
    someone = np.full(128, 0.2)  # 2.3 away: someone else
    photos = [
        photo(1, [near(her, 0.05, 0)]),
        photo(2, [near(her, 0.06, 0)], sharpness=10.0),  # blurry: last
        photo(3, [near(her, 0.30, 1)]),  # another angle: unlike photo 1
        photo(4, [near(her, 0.07, 0)]),  # much like photo 1
        photo(5, [her, someone]),  # two faces
        photo(6, [someone]),  # someone else's face
        photo(7, [], kept=True),  # no face, kept by the member for training
        Photo(id=8, number=8, sha256="8" * 64, phash=0, path="/p/8.jpg", caption="", shown_name="8.jpg",
              width=200, height=200),  # never looked at
    ]
    assert [p.number for p in references.usable(photos)] == [1, 2, 3, 4]
    assert [p.number for p in references.choose(photos, 4)] == [1, 3, 4, 2]
    assert [p.number for p in references.choose(photos, 2)] == [1, 3]
    assert references.choose([photos[4], photos[6], photos[7]], 4) == []  # nothing fit: the caller refuses
    assert "add a clear photo of their face" in references.none_usable(5)
