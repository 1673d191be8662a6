"""Damaged uploads for the intake's property tests and its fuzz target (bench/fuzz_intake.py).

Valid files are made here (JPEG, PNG, WebP, HEIC), then damaged the ways a network, a phone or an attacker
damages them: bytes flipped or overwritten, the file cut at any point, its chunks (PNG chunks, JPEG segments,
RIFF chunks, ISO boxes) deleted or repeated, their length fields changed, bytes added after the end.
`judge` is the property every damaged file must keep.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bot.intake import IntakeLimits, PreparedPhoto, Rejected, prepare

LIMITS = IntakeLimits(min_short_side=32, max_long_side=256)  # small pictures: many inputs a second
SECONDS = 2.0  # the most one input may take (the largest seed takes about 20 ms on a free core)

# Every sentence the intake refuses a picture file with (bot/intake.py); anything else is a finding.
SENTENCES = [
    re.compile(pattern)
    for pattern in (
        r"the file is empty",
        r"the file is damaged or cut off, so the picture can't be read",
        r"the picture is \d+x\d+ \([\d.e+]+ megapixels\); the limit is [\d.e+]+ megapixels",
        r"the picture is too large to open safely; the limit is [\d.e+]+ megapixels",
        r"the picture is \d+x\d+; photos need at least \d+ pixels on the short side for training",
        r"the picture is \d+x\d+, too long and narrow: shrunk to \d+ pixels long, as photos are kept, it would be "
        r"\d+ pixels wide; photos need at least \d+",
        r"this is an animation \(\d+ frames\); please send a still photo",
        r"this is a video, not a photo",
        r"this is (a PDF|a ZIP archive|a video|a program), not a photo",
        r"(GIF|BMP|TIFF) pictures aren't accepted; please send the photo as .+",
        r"this is a text file, not a photo",
        r"this isn't a photo file that can be read; please send a .+",
        r"this server's image library can't read AVIF; please send the photo as .+",
        r"this is an HEIC photo, which this server can't read; please send it as a JPEG or PNG",
    )
]


def _picture(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    layout = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
    return layout.resize(size, Image.Resampling.BICUBIC)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _sideways_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


@functools.cache
def originals() -> dict[str, bytes]:
    """The valid files damage starts from: each container and coding the intake reads, small."""
    rgb, rgba = _picture(1, (80, 64)), _picture(2, (64, 48)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    return {
        "jpeg": _encode(rgb, "JPEG", quality=85),
        "jpeg-progressive-exif": _encode(rgb, "JPEG", quality=85, progressive=True, exif=_sideways_exif()),
        "png": _encode(rgb, "PNG"),
        "png-rgba-exif": _encode(rgba, "PNG", exif=_sideways_exif()),
        "png-interlaced": _encode(rgb.convert("P"), "PNG", interlace=1),  # Pillow writes no interlaced RGB
        "webp-lossy": _encode(rgb, "WEBP", quality=80),
        "webp-lossless-alpha": _encode(rgba, "WEBP", lossless=True),
        "heic": _encode(rgb, "HEIF", quality=80),
    }


@functools.cache
def clean(name: str) -> PreparedPhoto:
    return prepare(originals()[name], LIMITS)


# ---- the ways files are damaged ----


def chunks(data: bytes) -> list[tuple[int, int, int, str]]:
    """The file's chunks as (start, end, length field's offset, its byte order + width as struct format)."""
    found: list[tuple[int, int, int, str]] = []
    if data.startswith(b"\x89PNG"):
        at = 8
        while at + 12 <= len(data):
            end = at + 12 + int.from_bytes(data[at : at + 4], "big")
            found.append((at, min(end, len(data)), at, ">I"))
            at = end
    elif data.startswith(b"\xff\xd8"):
        at = 2
        while at + 4 <= len(data) and data[at] == 0xFF:
            end = at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")
            found.append((at, min(end, len(data)), at + 2, ">H"))
            if data[at + 1] == 0xDA:  # the picture data follows its scan header: one chunk up to the end marker
                found.append((end, max(end, len(data) - 2), end, ">H"))
                break
            at = end
    elif data.startswith(b"RIFF"):
        at = 12
        while at + 8 <= len(data):
            end = at + 8 + int.from_bytes(data[at + 4 : at + 8], "little")
            end += end % 2
            found.append((at, min(end, len(data)), at + 4, "<I"))
            at = end
    else:  # ISO boxes (HEIF)
        at = 0
        while at + 8 <= len(data):
            size = int.from_bytes(data[at : at + 4], "big")
            if size < 8:
                break
            found.append((at, min(at + size, len(data)), at, ">I"))
            at += size
    return found


def flip(data: bytes, position: int, mask: int) -> bytes:
    out = bytearray(data)
    out[position % len(out)] ^= mask % 255 + 1  # never 0: a flip changes the byte
    return bytes(out)


def overwrite(data: bytes, position: int, new: bytes) -> bytes:
    at = position % len(data)
    return data[:at] + new + data[at + len(new) :]


def cut(data: bytes, length: int) -> bytes:
    return data[: length % len(data)]


def delete_chunk(data: bytes, index: int) -> bytes:
    found = chunks(data)
    if not found:
        return data
    start, end, _, _ = found[index % len(found)]
    return data[:start] + data[end:]


def duplicate_chunk(data: bytes, index: int) -> bytes:
    found = chunks(data)
    if not found:
        return data
    start, end, _, _ = found[index % len(found)]
    return data[:end] + data[start:end] + data[end:]


def set_length(data: bytes, index: int, value: int) -> bytes:
    """The chunk's length field set to `value` (wrapped to the field's width); the chunk's bytes are unchanged."""
    found = chunks(data)
    if not found:
        return data
    _, _, field, fmt = found[index % len(found)]
    width = struct.calcsize(fmt)
    if field + width > len(data):
        return data
    return data[:field] + struct.pack(fmt, value % (1 << (8 * width))) + data[field + width :]


def append(data: bytes, extra: bytes) -> bytes:
    return data + extra


DAMAGE: dict[str, Callable[..., bytes]] = {
    "flip": flip,
    "overwrite": overwrite,
    "cut": cut,
    "delete_chunk": delete_chunk,
    "duplicate_chunk": duplicate_chunk,
    "set_length": set_length,
    "append": append,
}


@dataclass(frozen=True)
class Damage:
    """One change to a file: DAMAGE[kind](data, *args)."""

    kind: str
    args: tuple[int | bytes, ...]

    def __call__(self, data: bytes) -> bytes:
        return DAMAGE[self.kind](data, *self.args) if data else data


# ---- what must hold ----


def png_is_whole(data: bytes) -> bool:
    """An independent strict reading of a PNG's structure: every chunk's CRC right, an end chunk, and picture
    data that inflates completely (checksum included) to exactly what the header's size needs."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    at, idat, header = 8, [], b""
    while at + 12 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if len(body) < length or at + 12 + length > len(data):
            return False
        if zlib.crc32(kind + body) != int.from_bytes(data[at + 8 + length : at + 12 + length], "big"):
            return False
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        at += 12 + length
    else:
        return False
    if len(header) != 13:
        return False
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 0)
    if not channels or width * height > LIMITS.max_pixels_whole:
        return False
    passes = _adam7(width, height) if interlace else [(width, height)]
    expected = sum(h * (1 + (w * channels * depth + 7) // 8) for w, h in passes if w and h)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(idat), expected + 1)
    except zlib.error:
        return False
    return inflater.eof and len(raw) == expected


def _adam7(width: int, height: int) -> list[tuple[int, int]]:
    steps = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    return [((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in steps]


def damaged(original: str, damage: list[Damage]) -> bytes:
    data = originals()[original]
    for change in damage:
        data = change(data)
    return data


@dataclass(frozen=True)
class Outcome:
    refused: str | None  # the sentence, or None when the picture was stored
    seconds: float  # wall time: what the member waits
    cpu_seconds: float  # the process's CPU time: what the input costs, whatever the shared machine's load


def judge(original: str, damage: list[Damage]) -> Outcome:
    """Send the damaged file to the intake and check its answer:

    - a refusal is one of the intake's sentences, and nothing else is ever raised;
    - a stored picture is a well-formed JPEG of its stated size, within the size limit;
    - a PNG is stored only when a strict, independent reading finds it whole (checksums, complete data);
    - a file only cut, or given bytes after its end, is refused or stored as the undamaged file is (a cut
      file is never stored as the part of the picture that was left);
    - all of it within SECONDS.
    """
    data = damaged(original, damage)
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        photo = prepare(data, LIMITS)
    except Rejected as refusal:
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        assert any(s.fullmatch(refusal.reason) for s in SENTENCES), f"unknown refusal: {refusal.reason!r}"
        assert seconds < SECONDS, f"refused after {seconds:.2f} s"
        return Outcome(refusal.reason, seconds, cpu)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    assert seconds < SECONDS, f"stored after {seconds:.2f} s"
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert stored.format == "JPEG" and stored.mode == "RGB"
        assert stored.size == (photo.width, photo.height)
        stored.load()
    assert max(photo.width, photo.height) <= LIMITS.max_long_side
    assert min(photo.width, photo.height) >= LIMITS.min_short_side
    if data.startswith(b"\x89PNG"):
        assert png_is_whole(data), "a damaged PNG was stored"
    if all(change.kind == "cut" for change in damage) or all(change.kind == "append" for change in damage):
        assert photo == clean(original), "a cut file was stored as another picture than the whole one"
    return Outcome(None, seconds, cpu)
