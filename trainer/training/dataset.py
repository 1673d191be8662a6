"""A training set: a folder of photos with same-named `.txt` captions.

The convention is ai-toolkit's and kohya's: `me1.jpg` + `me1.txt`. Every file
that is not a caption is taken for an image, so a stray or broken file is
reported rather than silently skipped; all problems are reported at once.

Each photo is looked at for faces (faces.verdict) and cropped to its bucket around the member's face: the
face stays in the frame, and on a photo with several faces the others are cropped out where they can be.
Photos with doubts (no face, someone else) are logged, not left out: the bot leaves out those its member did
not keep, and `python -m trainer dataset check` reports them before a run from a folder; `leave_out` (the
command line's `train`) leaves them out as the bot does. What the bot's checks saw comes with its photos
(LOOKS_FILENAME): those photos are not looked at again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from contract import LOOKS_FILENAME
from contract.subjects import PERSON, STYLE
from faces.crops import crop_box
from faces.verdict import Look, Verdict, identity, judge, look
from trainer.errors import DatasetError, FileProblem
from trainer.images import READABLE

log = logging.getLogger(__name__)

TRIGGER_PLACEHOLDER = re.compile(r"\[trigger\]", re.IGNORECASE)
MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo is fine; a decompression bomb is not
# Width/height ratios of the aspect-ratio buckets, from 1:2 portrait to 2:1 landscape.
BUCKET_RATIOS = (1 / 2, 9 / 16, 2 / 3, 3 / 4, 4 / 5, 1.0, 5 / 4, 4 / 3, 3 / 2, 16 / 9, 2.0)
# Flux needs sides divisible by 16: 8x VAE downsampling, then 2x2 packing.
SIDE_MULTIPLE = 16


@dataclass(frozen=True)
class TrainingImage:
    name: str
    caption: str  # with the trigger token in it
    image: Image.Image  # RGB, cropped to its bucket

    @property
    def bucket(self) -> tuple[int, int]:
        return self.image.size


@dataclass(frozen=True)
class TrainingSet:
    images: list[TrainingImage]
    sha256: str  # of names, bytes and captions: says which data an adapter came from
    identity: np.ndarray | None = None  # the member's face (faces.verdict.identity): samples are scored against it
    left_out: tuple[tuple[str, str], ...] = ()  # (file name, why) of each photo left out for its face check


def caption_with_token(caption: str | None, token: str, subject: str = PERSON) -> str:
    """Put the trigger token into a caption by doppel's three rules: `[trigger]` becomes the token; a caption
    that names the token keeps it where it is; any other gets it, a person's first (the token is the picture's
    subject), a style's last (the caption says what is drawn, the token how, as "in the style of TOK" in
    Hugging Face's DreamBooth LoRA notebooks and the style LoRAs Replicate's ostris/flux-dev-lora-trainer made)."""
    caption = (caption or "").strip()
    if not caption:
        return f"an image {style_suffix(token)}" if subject == STYLE else f"photo of {token}"
    if TRIGGER_PLACEHOLDER.search(caption):
        return TRIGGER_PLACEHOLDER.sub(token, caption)
    if re.search(rf"(?<!\w){re.escape(token)}(?!\w)", caption):
        return caption
    return f"{caption.rstrip(' .,')}, {style_suffix(token)}" if subject == STYLE else f"{token}, {caption}"


def style_suffix(token: str) -> str:
    """How a style's captions and prompts name it."""
    return f"in the style of {token}"


def round_side(value: float) -> int:
    return max(SIDE_MULTIPLE, round(value / SIDE_MULTIPLE) * SIDE_MULTIPLE)


def buckets_for(resolution: int) -> list[tuple[int, int]]:
    """(width, height) pairs of about resolution² pixels, sides multiples of 16."""
    buckets = []
    for ratio in BUCKET_RATIOS:
        size = (round_side(resolution * math.sqrt(ratio)), round_side(resolution / math.sqrt(ratio)))
        if size not in buckets:
            buckets.append(size)
    return buckets


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    ratio = math.log(width / height)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - ratio))


def fit_to_bucket(image: Image.Image, bucket: tuple[int, int], verdict: Verdict | None = None) -> Image.Image:
    """Cut the bucket's shape from the picture (around the member's face where the verdict knows it, without
    the other faces where it can), then scale it to the bucket."""
    if verdict is None or verdict.face is None:
        return ImageOps.fit(image, bucket, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    window = crop_box(image.size, bucket, verdict.face.box, verdict.others)
    return image.resize(bucket, Image.Resampling.LANCZOS, box=window)


def decode_image(data: bytes) -> Image.Image:
    """Decode fully (so truncation shows now), upright per EXIF, in RGB.

    Raises ValueError with a reason a person understands.
    """
    if not data:
        raise ValueError("the file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise ValueError(
                    f"the image is {opened.width}x{opened.height}, "
                    f"over the limit of {MAX_PIXELS // 1_000_000} megapixels"
                )
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            return upright.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError(f"this is not an image doppel can read ({READABLE})") from None
    except Image.DecompressionBombError:
        raise ValueError("the image has too many pixels to open safely") from None
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ValueError("the image is truncated: the file ends before the picture does") from None
        raise ValueError(f"the image is damaged ({exc})") from None


def image_files(folder: Path) -> list[Path]:
    """Every file that should be an image: all but captions and hidden files."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".txt" and p.name != LOOKS_FILENAME
    )


def given_looks(folder: Path) -> dict[str, Look]:
    """What the bot's face checks saw in the folder's photos, by file name; {} where it said nothing."""
    path = folder / LOOKS_FILENAME
    try:
        return {name: Look.from_data(data) for name, data in json.loads(path.read_text(encoding="utf-8")).items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as unreadable:
        log.warning("%s cannot be read (%s): every photo is looked at again", path, unreadable)
        return {}


def load_training_set(
    folder: Path, token: str, resolution: int, faces: bool = True, leave_out: bool = False, subject: str = PERSON
) -> TrainingSet:
    """Read, check and crop every image of a folder; raise DatasetError naming every bad file.

    `faces`: look for faces and crop around the member's (see the module's text); off, crops are centred.
    `leave_out`: the photos the checks doubt (no face, someone else's) are not trained on.
    `subject`: whose captions these are (`caption_with_token`); a style's pictures are never looked at for faces."""
    faces = faces and subject != STYLE
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder of photos" if folder.exists() else "does not exist"
        raise DatasetError([], summary=f"the image folder '{folder}' {what}")
    buckets = buckets_for(resolution)
    read, problems = [], []
    told = given_looks(folder) if faces else {}
    for path in image_files(folder):
        data = path.read_bytes()
        try:
            picture = decode_image(data)
        except ValueError as exc:
            problems.append(FileProblem(path.name, str(exc)))
            continue
        caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text(encoding="utf-8", errors="replace") if caption_file.is_file() else None
        caption = caption_with_token(caption, token, subject)
        # The bytes, not the picture, wait for the set's verdicts: decoding again is cheaper than holding
        # forty decoded photos.
        seen = told.get(path.name)
        if faces and (seen is None or seen.size != picture.size):  # a size that differs: not this picture's
            seen = look(picture)
        read.append((path.name, caption, data, seen if faces else None))
    if problems:
        raise DatasetError(problems)
    if not read:
        raise DatasetError([], summary=f"the image folder '{folder}' has no images")
    verdicts = judge([found for *_, found in read])
    images, left_out = [], []
    digest = hashlib.sha256()
    for (name, caption, data, _), verdict in zip(read, verdicts, strict=True):
        if verdict is not None and verdict.doubts:
            if leave_out:
                left_out.append((name, "; ".join(verdict.doubts)))
                continue
            log.info("%s: %s (trained on all the same)", name, "; ".join(verdict.doubts))
        for part in (name.encode(), hashlib.sha256(data).digest(), caption.encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
        picture = decode_image(data)
        bucket = nearest_bucket(picture.width, picture.height, buckets)
        images.append(TrainingImage(name, caption, fit_to_bucket(picture, bucket, verdict)))
    if not images:
        why = "; ".join(f"{name}: {why}" for name, why in left_out)
        raise DatasetError([], summary=f"the face checks leave out every photo in '{folder}' ({why}); "
                                       "--keep-all trains on them all")
    return TrainingSet(images, digest.hexdigest(), identity([found for *_, found in read]), tuple(left_out))
