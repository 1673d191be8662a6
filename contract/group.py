"""Group pictures: how one is asked for, and what came of it, torch-free.

A group picture is drawn in two passes. The composition is the prompt with each named
person's token replaced by a neutral stand-in, drawn without identity adapters (or with
them weakly); or it is a photo the member gave. Then each face in it is redrawn with
only its person's adapter. A `GroupPlan` rides inside a `GenerateRequest` (its `group`
field), whose `adapters` name the people in the order they were named; the outcome
rides inside the picture's PNG text (key `doppel:group`), so the job record, the
runner and the artifact sink carry it as they carry any picture.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from contract.requests import _Wire

STAND_IN = "a person"  # what the composition draws where a person is named; see the README's group pictures
MAX_PHOTO_BYTES = 4 * 2**20  # the team photo as it travels (the bot sends a re-encoded copy, well below)
MAX_RETRIES = 3  # redraws of a face that does not pass, each with another seed
OUTCOME_KEY = "group"  # under "doppel:" in the picture's PNG text
DENOISE_LOW, DENOISE_HIGH = 0.3, 1.0


@dataclass(frozen=True)
class GroupPlan(_Wire):
    """How to draw a group. `tokens[k]` is how the prompt names the person of `adapters[k]`;
    `identities[k]` their face descriptor (128 floats) when known, used to match faces and score."""

    tokens: tuple[str, ...]
    stand_in: str = STAND_IN
    composition_strength: float = 0.0  # the adapters' strength in the composition; 0: none at all
    photo: str | None = None  # base64 of an image whose faces are the composition
    denoise: float = 0.7  # how much of each face region is redrawn (a fraction of the steps)
    retries: int = 2
    identities: tuple[tuple[float, ...] | None, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(
            self, "identities", tuple(None if i is None else tuple(float(x) for x in i) for i in self.identities)
        )

    def problems(self, people: int) -> list[str]:
        found: list[str | None] = []
        if len(self.tokens) != people or people < (1 if self.photo else 2):
            found.append("a group picture names two or more people (one, in a photo), each with an adapter")
        if len(set(self.tokens)) != len(self.tokens) or not all(t and t.isalnum() for t in self.tokens):
            found.append("each person in a group picture is named once, by their token")
        if self.identities and len(self.identities) != people:
            found.append("a group picture's identities must match its people")
        if not 0.0 <= self.composition_strength <= 1.0:
            found.append("the composition's adapter strength must be from 0 to 1")
        if not DENOISE_LOW <= self.denoise <= DENOISE_HIGH:
            found.append(f"how much of a face is redrawn must be from {DENOISE_LOW:g} to {DENOISE_HIGH:g}")
        if not 0 <= self.retries <= MAX_RETRIES:
            found.append(f"a face is redrawn at most {MAX_RETRIES} more times")
        found.append(photo_problem(self.photo, "the group photo"))
        return [p for p in found if p]

    def photo_bytes(self) -> bytes | None:
        return decode_photo(self.photo)

    @staticmethod
    def encode_photo(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")


def decode_photo(text: str | None) -> bytes | None:
    """A photo as a request carries it (base64 of its bytes), decoded; None: none, or not base64."""
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def photo_problem(text: str | None, what: str) -> str | None:
    """Why a photo a request carries cannot travel (too large, not base64), in a person's words; None: it can."""
    if text is not None and (len(text) * 3 // 4 > MAX_PHOTO_BYTES or decode_photo(text) is None):
        return f"{what} must be an image of at most {MAX_PHOTO_BYTES // 2**20} MB"
    return None


@dataclass(frozen=True)
class PlacedFace(_Wire):
    """A face of the picture: where (left, top, right, bottom), whose (an adapter name; None: a face the
    composition keeps), its distance to that person's identity (None: not scored), and whether it passed."""

    box: tuple[int, int, int, int]
    owner: str | None = None
    score: float | None = None
    passed: bool = True
    tries: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", tuple(int(v) for v in self.box))

    def verdict(self) -> str:
        """In words, as its JSON says it: whether it passed as its person, and after how many tries."""
        if self.owner is None:
            return "kept as the composition drew it"
        tries = f" after {self.tries} {'try' if self.tries == 1 else 'tries'}" if self.tries else ""
        if self.score is None:
            return "not scored" if self.passed else f"did not pass: no face found where it was redrawn{tries}"
        return f"distance {self.score:.2f}, {'passed' if self.passed else 'did not pass'}{tries}"


@dataclass(frozen=True)
class GroupOutcome(_Wire):
    """What a group picture holds. `fallback`: why the faces could not be given their people (fewer faces
    than people); the picture is then the composition alone, and the single-pass picture is offered."""

    people: tuple[str, ...]
    faces: tuple[PlacedFace, ...] = ()
    fallback: str | None = None
    threshold: float | None = None  # the distance at or below which a face passes as its person

    def __post_init__(self) -> None:
        object.__setattr__(self, "people", tuple(self.people))
        object.__setattr__(
            self, "faces", tuple(f if isinstance(f, PlacedFace) else PlacedFace.from_data(f) for f in self.faces)
        )

    def face_of(self, person: str) -> PlacedFace | None:
        return next((f for f in self.faces if f.owner == person), None)

    def to_json(self) -> str:
        return json.dumps(self.to_data(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> GroupOutcome:
        data: dict[str, Any] = json.loads(text)
        return cls.from_data(data)


def fewer_faces(found: int, people: int, where: str = "composition") -> str:
    """The fallback's reason, for the member. `where`: the composition, or the photo they gave."""
    faces = "no face" if found == 0 else f"only {found} face{'s' if found > 1 else ''}"
    persons = "1 person" if people == 1 else f"{people} people"
    return f"I found {faces} for {persons} in the {where}"
