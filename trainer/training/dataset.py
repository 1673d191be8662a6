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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from contract import LOOKS_FILENAME
from contract.orientation import TURNED, exif_orientation
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


def training_crop(data: bytes, size: tuple[int, int], bucket: tuple[int, int],
                  verdict: Verdict | None = None) -> Image.Image:
    """The bucket's shape cut from the photo (around the member's face where the verdict knows it, without the
    other faces where it can), scaled to the bucket. `size` is the photo's upright size.

    A JPEG is decoded only as finely as the window needs (libjpeg scales by 1/2, 1/4 or 1/8 as it decodes): a
    12-megapixel phone photo cropped to a 1024 px bucket decodes at a quarter of its pixels."""
    if verdict is not None and verdict.face is not None:
        window = crop_box(size, bucket, verdict.face.box, verdict.others)
    else:
        window = crop_box(size, bucket)
    scale = max(bucket[0] / (window[2] - window[0]), bucket[1] / (window[3] - window[1]))
    picture = decode_image(data, at_least=(math.ceil(size[0] * scale), math.ceil(size[1] * scale)))
    if picture.size != size and picture.size == size[::-1]:  # turned by EXIF its header did not hold (a PNG's)
        return training_crop(data, picture.size, bucket[::-1], verdict)
    across, down = picture.width / size[0], picture.height / size[1]
    box = (window[0] * across, window[1] * down, window[2] * across, window[3] * down)
    return picture.resize(bucket, Image.Resampling.LANCZOS, box=box)


def upright_size(data: bytes) -> tuple[int, int]:
    """The photo's width and height once turned upright per the EXIF in its header (where a JPEG, WebP, HEIC
    or AVIF keeps it; a PNG's may follow its pixels, and training_crop turns it then).

    Raises ValueError as decode_image does for a file that is not an image or has too many pixels."""
    with _opened(data) as opened:
        width, height = opened.size
        turned = exif_orientation(opened.info) in TURNED
    return (height, width) if turned else (width, height)


def decode_image(data: bytes, at_least: tuple[int, int] | None = None) -> Image.Image:
    """Decode fully (so truncation shows now), upright per EXIF, in RGB.

    `at_least` (upright width, height): a JPEG may come back smaller than stored, never smaller than this.
    Raises ValueError with a reason a person understands.
    """
    with _opened(data) as opened:
        if at_least is not None:
            opened.draft("RGB", at_least[::-1] if exif_orientation(opened.info) in TURNED else at_least)
        opened.load()
        upright = ImageOps.exif_transpose(opened)
        return upright.convert("RGB")


def unreadable(data: bytes) -> str | None:
    """Why the image cannot be decoded, or None: it can."""
    try:
        decode_image(data)
    except ValueError as exc:
        return str(exc)
    return None


@contextmanager
def _opened(data: bytes) -> Iterator[Image.Image]:
    """The image's header read and its size checked; ValueError with a reason a person understands."""
    if not data:
        raise ValueError("the file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise ValueError(
                    f"the image is {opened.width}x{opened.height}, "
                    f"over the limit of {MAX_PIXELS // 1_000_000} megapixels"
                )
            yield opened
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
            size = upright_size(data)
            seen = told.get(path.name) if faces else None
            if faces and (seen is None or seen.size != size):  # a size that differs: not this picture's
                picture = decode_image(data)
                size, seen = picture.size, look(picture)
        except ValueError as exc:
            problems.append(FileProblem(path.name, str(exc)))
            continue
        caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text(encoding="utf-8", errors="replace") if caption_file.is_file() else None
        caption = caption_with_token(caption, token, subject)
        # The bytes, not the picture, wait for the set's verdicts: decoding again (and only as finely as the
        # crop needs) is cheaper than holding forty decoded photos.
        read.append((path.name, caption, data, size, seen))
    if problems:  # every bad file at once: those only sized so far are decoded to see whether they are whole
        raise DatasetError(problems + [FileProblem(name, why) for name, _, data, *_ in read
                                       if (why := unreadable(data)) is not None])
    if not read:
        raise DatasetError([], summary=f"the image folder '{folder}' has no images")
    verdicts = judge([found for *_, found in read])
    images, left_out = [], []
    digest = hashlib.sha256()
    for (name, caption, data, size, _), verdict in zip(read, verdicts, strict=True):
        if verdict is not None and verdict.doubts:
            if leave_out:
                left_out.append((name, "; ".join(verdict.doubts)))
                continue
            log.info("%s: %s (trained on all the same)", name, "; ".join(verdict.doubts))
        for part in (name.encode(), hashlib.sha256(data).digest(), caption.encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
        try:  # a photo whose header alone was read is decoded only now: a truncated one shows here
            crop = training_crop(data, size, nearest_bucket(*size, buckets), verdict)
        except ValueError as exc:
            problems.append(FileProblem(name, str(exc)))
            continue
        images.append(TrainingImage(name, caption, crop))
    if problems:
        raise DatasetError(problems)
    if not images:
        why = "; ".join(f"{name}: {why}" for name, why in left_out)
        raise DatasetError([], summary=f"the face checks leave out every photo in '{folder}' ({why}); "
                                       "--keep-all trains on them all")
    return TrainingSet(images, digest.hexdigest(), identity([found for *_, found in read]), tuple(left_out))
