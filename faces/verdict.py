"""Verdicts on a member's photos: who is in each, judged against the whole set.

Looking at a photo (`look`: finding its faces and measuring its sharpness) is the slow part and is done
once per photo; judging (`judge`) is arithmetic on the looks of the whole set, so it is simply done again
whenever the set changes: the first photos are re-judged as the set grows.

The set's identity is the medoid of the faces of the photos that show exactly one face, once there are
IDENTITY_FROM of them: with fewer, nobody can say which of two faces is the member. A medoid, not a mean,
so a friend's photo or two cannot pull the identity towards the friend.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from faces.crops import Box
from faces.detect import Face, find_faces
from faces.measure import SAME_PERSON, distance, face_share, identity_of, sharpness

IDENTITY_FROM = 3  # photos with one face before the set has an identity
# Sharpness (variance of the Laplacian at 512 px): the astronaut, the cameraman and skimage's coffee measure
# 860-1620 sharp, 50-95 after a Gaussian blur of 1 px (soft but usable), 7-13 after 2 px (smeared).
BLURRY = 30.0
# A face covering less than this share of the frame is small: at 1024 px training resolution a 1% face is
# about 100 px across, where the identity starts to be lost (the astronaut's face is 3% of her photo).
SMALL_FACE = 0.01


@dataclass(frozen=True)
class Look:
    """What one photo shows: its size, sharpness and faces (largest first)."""

    size: tuple[int, int]
    sharpness: float
    faces: tuple[Face, ...]

    def to_json(self) -> str:
        return json.dumps(self.to_data())

    @classmethod
    def from_json(cls, text: str) -> Look:
        return cls.from_data(json.loads(text))

    def to_data(self) -> dict:
        return {
            "size": list(self.size),
            "sharpness": round(self.sharpness, 2),
            "faces": [
                {"box": list(f.box), "detector": f.detector,
                 "descriptor": base64.b64encode(np.asarray(f.descriptor, dtype="<f4").tobytes()).decode()}
                for f in self.faces
            ],
        }

    @classmethod
    def from_data(cls, data: dict) -> Look:
        faces = tuple(
            Face(box=tuple(f["box"]), detector=f["detector"],
                 descriptor=np.frombuffer(base64.b64decode(f["descriptor"]), dtype="<f4").copy())
            for f in data["faces"]
        )
        return cls(size=(data["size"][0], data["size"][1]), sharpness=data["sharpness"], faces=faces)


def look(image: Image.Image) -> Look:
    """Find the faces in a photo and measure its sharpness (0.1-0.5 s of CPU, with a face or without).
    Blocking, and dlib holds the GIL: call it in another process where a loop must go on."""
    return Look(size=image.size, sharpness=sharpness(image), faces=tuple(find_faces(image)))


def look_at_file(data: bytes) -> Look:
    """`look` at an encoded picture: what a process pool is handed (bytes pickle cheaply, images do not)."""
    with Image.open(io.BytesIO(data)) as image:
        return look(image.convert("RGB"))


@dataclass(frozen=True)
class Verdict:
    """One photo, judged against its set."""

    faces: int  # how many faces were found
    face: Face | None  # the member's: the only face, or the one closest to the identity; None when unknown
    boxes: tuple[Box, ...]  # every face's box, the member's too
    distance: float | None  # from the member's face to the set's identity; None before there is one
    sharpness: float
    share: float | None  # of the frame the member's face covers

    @property
    def someone_else(self) -> bool:
        return self.distance is not None and self.distance > SAME_PERSON

    @property
    def blurry(self) -> bool:
        return self.sharpness < BLURRY

    @property
    def small(self) -> bool:
        return self.share is not None and self.share < SMALL_FACE

    @property
    def doubts(self) -> list[str]:
        """Why this may not be a photo of the member, in the member's words: such a photo trains only once they
        say it is theirs (the bot) or is reported (the data folder)."""
        if self.faces == 0:
            return ["I see no face in it"]
        if self.someone_else:
            return [f"the face does not look like the one in your other photos (distance {self.distance:.2f})"]
        if self.faces > 1:
            return [f"I see {self.faces} faces in it"]
        return []

    @property
    def notes(self) -> list[str]:
        """What is worth knowing but no reason to leave the photo out."""
        return [note for note, applies in (("blurry", self.blurry), ("small face", self.small)) if applies]

    @property
    def others(self) -> list[Box]:
        """The boxes of the faces that are not the member's (all of them while theirs is not known)."""
        return [box for box in self.boxes if self.face is None or box != self.face.box]

    def label(self) -> str:
        """A few words for a contact sheet: what was found and how sure."""
        if self.faces == 0:
            words = "no face"
        elif self.someone_else:
            words = "someone else?"
        elif self.faces > 1:
            words = f"{self.faces} faces" + (", you found" if self.face is not None else "")
        elif self.distance is None:
            words = "1 face"
        else:
            words = "you"
        if self.distance is not None:
            words += f" ({self.distance:.2f})"
        return ", ".join([words, *self.notes])


def identity(looks: Sequence[Look | None]) -> np.ndarray | None:
    """The set's identity (see the module's text), or None while fewer than IDENTITY_FROM photos show one face."""
    single = [found.faces[0].descriptor for found in looks if found is not None and len(found.faces) == 1]
    return identity_of(single) if len(single) >= IDENTITY_FROM else None


def judge(looks: Sequence[Look | None]) -> list[Verdict | None]:
    """A verdict for each photo of a set (None for a photo not looked at)."""
    member = identity(looks)
    return [None if found is None else verdict(found, member) for found in looks]


def verdict(found: Look, member: np.ndarray | None) -> Verdict:
    """One photo against the set's identity (None: not known yet)."""
    face: Face | None = None
    gap: float | None = None
    if member is not None and found.faces:
        face = min(found.faces, key=lambda f: distance(f.descriptor, member))
        gap = distance(face.descriptor, member)
    elif len(found.faces) == 1:
        face = found.faces[0]
    share = face_share(face.box, found.size) if face is not None else None
    return Verdict(faces=len(found.faces), face=face, boxes=tuple(f.box for f in found.faces), distance=gap,
                   sharpness=found.sharpness, share=share)
