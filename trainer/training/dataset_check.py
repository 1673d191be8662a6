"""`python -m trainer dataset check`: a verdict on each photo of a folder before training from it.

Each file: readable or not, the faces found, whether the face is the same person as the rest of the set
(distance to the set's identity, faces.verdict), sharpness, and whether it repeats an earlier file. A photo
counts as usable when it is readable, new, and shows the member: one face of theirs, or theirs among several
(training crops around it). Training from the folder uses every readable photo all the same; this says which
ones teach the likeness.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from faces.duplicates import NEAR_DUPLICATE, hamming, perceptual_hash
from faces.verdict import Look, identity, look, verdict
from trainer.errors import DatasetError
from trainer.training.dataset import decode_image, image_files


@dataclass(frozen=True)
class FileVerdict:
    name: str
    faces: int | None  # None: the file could not be read
    same_person: bool | None  # None: no face, or no identity yet (fewer than 3 photos with one face)
    distance: float | None
    sharpness: float | None
    blurry: bool
    small_face: bool
    duplicate_of: str | None
    problems: list[str]  # why it is not usable, in a person's words; empty when it is

    @property
    def usable(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Report:
    files: list[FileVerdict]
    minimum: int

    @property
    def usable(self) -> int:
        return sum(f.usable for f in self.files)

    @property
    def enough(self) -> bool:
        return self.usable >= self.minimum

    def to_json(self) -> str:
        return json.dumps({"photos": [asdict(f) | {"usable": f.usable} for f in self.files], "usable": self.usable,
                           "minimum": self.minimum, "enough": self.enough}, indent=2)

    def lines(self) -> list[str]:
        lines = [f"{f.name}: {describe(f)}" for f in self.files]
        left = len(self.files) - self.usable
        summary = f"{len(self.files)} photos, {self.usable} usable" + (f", {left} not" if left else "") + "."
        if self.enough:
            summary += f" Enough to train a likeness (at least {self.minimum})."
        else:
            missing = self.minimum - self.usable
            summary += f" A likeness needs at least {self.minimum} usable photos: add {missing} more."
        return [*lines, summary]


def describe(file: FileVerdict) -> str:
    if file.faces is None:
        return f"unreadable: {file.problems[0]}"
    parts = ["no face" if file.faces == 0 else f"{file.faces} face{'s' if file.faces > 1 else ''}"]
    if file.distance is not None:
        parts.append(f"{'same person' if file.same_person else 'someone else'} (distance {file.distance:.2f})")
    parts += [note for note, applies in (("blurry", file.blurry), ("small face", file.small_face)) if applies]
    if file.faces > 1 and not file.problems:
        parts.append("trains on a crop around theirs")
    verdict = ", ".join(parts)
    return f"{verdict}: not usable ({'; '.join(file.problems)})" if file.problems else f"{verdict}: usable"


def check_folder(folder: Path, minimum: int) -> Report:
    """Judge every image file of `folder` (see the module's text). Raises DatasetError for a missing folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError([], summary=f"the image folder '{folder}' does not exist")
    read: list[tuple[str, Look | None, str | None, str | None]] = []  # name, look, unreadable, duplicate of
    seen: list[tuple[str, str, int]] = []  # name, sha256, perceptual hash
    for path in image_files(folder):
        data = path.read_bytes()
        try:
            picture = decode_image(data)
        except ValueError as exc:
            read.append((path.name, None, str(exc), None))
            continue
        sha, phash = hashlib.sha256(data).hexdigest(), perceptual_hash(picture)
        same = next((name for name, s, p in seen if s == sha or hamming(p, phash) <= NEAR_DUPLICATE), None)
        seen.append((path.name, sha, phash))
        read.append((path.name, look(picture), None, same))
    if not read:
        raise DatasetError([], summary=f"the image folder '{folder}' has no images")
    member = identity([found if same is None else None for _, found, _, same in read])  # a copy counts once
    return Report([_file(entry, member) for entry in read], minimum)


def _file(entry: tuple[str, Look | None, str | None, str | None], member: np.ndarray | None) -> FileVerdict:
    name, found, unreadable, same = entry
    if found is None:
        return FileVerdict(name, None, None, None, None, False, False, None, [unreadable or "unreadable"])
    judged = verdict(found, member)
    problems = [why for why, applies in (
        ("no face", judged.faces == 0),
        ("someone else", judged.someone_else),
        ("several faces, and too few photos of one face yet to tell which is theirs",
         judged.faces > 1 and judged.face is None),
    ) if applies]  # several faces with theirs known: training crops around theirs
    if same:
        problems.append(f"the same picture as {same}")
    return FileVerdict(
        name=name, faces=judged.faces,
        same_person=None if judged.distance is None else not judged.someone_else,
        distance=None if judged.distance is None else round(judged.distance, 3),
        sharpness=round(judged.sharpness, 1), blurry=judged.blurry, small_face=judged.small,
        duplicate_of=same, problems=problems,
    )
