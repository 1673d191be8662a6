"""Photo intake: every upload is hostile until proven otherwise.

A member's photos end up on disk, in a training set and in front of a GPU, so nothing about an
upload is trusted: not its name, not its declared type, not its header, not its metadata. What
comes out of `prepare` is a fresh JPEG made from decoded pixels only, with nothing of the
original file carried over but the picture itself.

Everything here but `DecodePool` and `FaceChecks` is blocking and pure (no Discord, no torch): the bot
decodes through a `DecodePool`, looks for faces through `FaceChecks` and stores through `asyncio.to_thread`.
Refusals raise `Rejected`, whose `.reason` is written for the member.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import logging
import math
import multiprocessing
import struct
import zlib
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, features

from bot.jobs.files import DISK_FULL
from contract.atomic import atomic_write_bytes
from contract.orientation import TURNED, exif_orientation, transpose
from faces.duplicates import NEAR_DUPLICATE, hamming, perceptual_hash
from faces.verdict import Look, look_at_file

if TYPE_CHECKING:
    from bot.settings import BotSettings

try:  # colour management is optional in Pillow builds; without it profiles are dropped
    from PIL import ImageCms

    _SRGB: ImageCms.ImageCmsProfile | None = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
except ImportError:  # pragma: no cover - Pillow's wheels ship LittleCMS
    _SRGB = None  # and ImageCms is never used

try:  # HEIC is what iPhones take by default; without pillow-heif it is refused with a reason
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False)
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - pillow-heif is a dependency
    HEIF_SUPPORTED = False

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# AVIF (newer Android cameras, web exports): Pillow reads it when built with libavif, as its wheels are.
AVIF_SUPPORTED = features.check("avif")
ACCEPTED = "JPEG, PNG, WebP, HEIC or AVIF" if AVIF_SUPPORTED else "JPEG, PNG, WebP or HEIC"


@dataclass(frozen=True)
class IntakeLimits:
    """What an upload may be. `near_duplicate_distance`: see faces.duplicates.NEAR_DUPLICATE."""

    max_bytes: int = 20 * MiB
    # Pixel caps, checked from the header before any pixel is decoded, keep one decode's peak memory under
    # 200 MB (measured: tests/bot/test_intake.py, test_a_decode_at_the_cap_stays_under_200_mb). A JPEG is
    # decoded at 1/2 to 1/8 scale when that still leaves max_long_side (at most about 16 MP, 125 MiB), so
    # its cap only stops absurd files; PNG and HEIF are decoded whole (about 11 MiB a megapixel with
    # alpha), WebP needs about 16 MiB a megapixel in libwebp's decoder.
    max_pixels: int = 50_000_000  # JPEG
    max_pixels_whole: int = 16_000_000  # PNG, HEIF
    max_pixels_webp: int = 10_000_000
    min_short_side: int = 512
    max_long_side: int = 2048  # stored photos are shrunk to this; training never needs more
    # The short side the picture must still have once shrunk to max_long_side; None: min_short_side, as a
    # training photo needs. (A team photo for /imagine, looked at only for its faces, sets 1.)
    min_kept_short_side: int | None = None
    near_duplicate_distance: int = NEAR_DUPLICATE
    allowed_hosts: tuple[str, ...] = ("cdn.discordapp.com", "media.discordapp.net")
    allowed_schemes: tuple[str, ...] = ("https",)  # tests add http for a stand-in on loopback

    @classmethod
    def for_training(cls, settings: BotSettings) -> IntakeLimits:
        """The limits of pictures to train on (a member's photos, a style's pictures), as the bot is set."""
        return cls(
            max_bytes=settings.max_upload_mb * 2**20,
            min_short_side=settings.min_photo_side,
            allowed_hosts=tuple(settings.attachment_hosts),
            allowed_schemes=tuple(settings.attachment_schemes),
        )


class Rejected(Exception):
    """An upload refused; `reason` is a short sentence for the member, shown after the file name."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreparedPhoto:
    data: bytes = field(repr=False)  # the re-encoded JPEG: the only bytes ever stored
    sha256: str
    width: int
    height: int
    phash: int
    source_format: str  # JPEG, PNG, WEBP, HEIF or AVIF, as judged from the content


def source_sha256(data: bytes, known: Mapping[str, int]) -> str:
    """The SHA-256 of the uploaded bytes, refusing an exact copy of a photo the member has (`known`: upload
    SHA-256 to photo number) before a single pixel is decoded."""
    digest = hashlib.sha256(data).hexdigest()
    if digest in known:
        raise Rejected(f"this is the same picture as photo {known[digest]}")
    return digest


class DecodePool:
    """Where `prepare` runs: a small pool of threads, so a burst of uploads decodes a few at a time
    (each decode's peak memory is bounded by the pixel caps) and never holds up the event loop."""

    def __init__(self, workers: int = 2):
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doppel-intake")

    async def prepare(self, data: bytes, limits: IntakeLimits) -> PreparedPhoto:
        return await asyncio.get_running_loop().run_in_executor(self._executor, prepare, data, limits)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class FaceChecks:
    """Where photos are looked at for faces: a process of its own, started on first use, with dlib's models
    loaded once in it. Not a thread: dlib holds the GIL while it computes (measured: its CNN stopped a 5 ms
    ticker thread for the 4.4 s it ran), so a thread would stall the event loop. One process: one core."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None

    async def look(self, data: bytes) -> Look | None:
        """What the photo (its stored JPEG) shows; None when the check could not run (it is logged, and the
        photo is kept unchecked rather than lost)."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, look_at_file, data)
        except BrokenProcessPool:  # the process died (out of memory?): a fresh one next time
            log.error("the face check's process died; the photo is kept unchecked")
            self._executor = None
        except Exception:
            log.exception("a face check failed; the photo is kept unchecked")
        return None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def check_source_url(url: str, limits: IntakeLimits = IntakeLimits()) -> None:
    """Refuse any link but plain https to an allowed host, before anything is downloaded.

    The whole network location must equal an allowed host, so userinfo (`https://cdn.discordapp.com@evil.com/`),
    ports, trailing dots and percent-encoding all fail; control characters, spaces, backslashes and non-ASCII
    are refused outright because URL parsers disagree about them.
    """
    if any(c <= " " or c == "\\" or ord(c) > 126 for c in url):
        raise Rejected("the link contains characters a Discord attachment link never has")
    parts = urlsplit(url)
    if parts.scheme.lower() not in limits.allowed_schemes:
        raise Rejected("only https links to Discord attachments are accepted")
    if parts.netloc.lower() not in {host.lower() for host in limits.allowed_hosts}:
        raise Rejected("only links to files uploaded to Discord are accepted")


def prepare(data: bytes, limits: IntakeLimits = IntakeLimits()) -> PreparedPhoto:
    """Check an upload and turn it into a clean, upright, metadata-free sRGB JPEG.

    Rules:
    - The type comes from the content (magic bytes); names and declared types are ignored.
      JPEG, PNG, WebP, HEIC/HEIF and AVIF are accepted; everything else, GIF included, is refused.
    - Animated images (APNG, animated WebP) are refused rather than cut to one frame: which frame is
      "the photo" is a guess, and animations are stickers and screen captures, not photos of a person.
      A HEIF file holding several pictures is a collection, not an animation: its primary picture,
      the one the phone shows, is used.
    - The pixel count is checked from the header before decoding (decompression bombs), with Pillow's
      own bomb check behind it; the whole picture is then decoded, so cut-off files are refused.
    - EXIF orientation is applied, then all metadata is dropped: EXIF (GPS included), XMP, comments.
      An embedded ICC profile is used to convert the pixels to sRGB (a phone's Display P3 would
      otherwise look washed out) and then dropped; a broken profile is ignored.
    - Transparency is flattened onto white; the long side is shrunk to `max_long_side`; the result is
      a JPEG at quality 95 built from the pixels alone.
    """
    if not data:
        raise Rejected("the file is empty")
    if len(data) > limits.max_bytes:
        size, limit = _size(len(data)), _size(limits.max_bytes)
        raise Rejected(f"the file is {'just over ' + limit if size == limit else size}; the limit is {limit}")
    kind = _sniff(data)
    cap = {"JPEG": limits.max_pixels, "WEBP": limits.max_pixels_webp}.get(kind, limits.max_pixels_whole)
    if kind == "WEBP":  # Pillow allocates a WebP's canvas while opening it, so look first
        _check_pixels(_webp_size(data), cap)
    if kind == "PNG":  # Pillow checks no checksum of the picture data, so a damaged PNG would decode to noise
        _check_png_chunks(data)
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
    except Image.DecompressionBombError:
        raise Rejected(
            f"the picture is too large to open safely; the limit is {_mp(cap)} megapixels"
        ) from None
    except Exception:  # hostile input makes parsers raise anything
        raise Rejected(_DAMAGED) from None
    with image:
        _check_pixels(image.size, cap)
        frames = getattr(image, "n_frames", 1)
        # A JPEG with several pictures is an MPO (an Ultra HDR photo's gain map, a depth map, a stereo
        # pair): the first picture is the photo, and the one decoded.
        if frames > 1 and kind not in ("HEIF", "JPEG"):
            raise Rejected(f"this is an animation ({frames} frames); please send a still photo")
        # The metadata read with the header; a PNG may keep its eXIf after the picture data, read by the decode.
        orientation = exif_orientation(image.info)
        width, height = image.size[::-1] if orientation in TURNED else image.size
        if min(width, height) < limits.min_short_side:  # judged the way up the member sees it, before decoding
            raise Rejected(
                f"the picture is {width}x{height}; photos need at least {limits.min_short_side} pixels "
                "on the short side for training"
            )
        long, short = max(width, height), min(width, height)
        kept_short = short * limits.max_long_side // long  # its short side once shrunk to max_long_side
        need = limits.min_short_side if limits.min_kept_short_side is None else limits.min_kept_short_side
        if long > limits.max_long_side and kept_short < need:  # found by bench/fuzz_intake.py
            raise Rejected(
                f"the picture is {width}x{height}, too long and narrow: shrunk to {limits.max_long_side} pixels "
                f"long, as photos are kept, it would be {kept_short} pixels wide; photos need at least {need}"
            )
        scale = limits.max_long_side / long
        if kind == "JPEG" and scale < 1:  # decode at 1/2, 1/4 or 1/8 scale where that still leaves enough pixels
            image.draft(image.mode, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
        _decode(image)
        orientation = exif_orientation(image.info)
        icc = image.info.get("icc_profile")
        # Peak memory is the decoded picture plus one working copy at most (see IntakeLimits.max_pixels):
        # everything after the shrink works on at most max_long_side² pixels.
        flat = _flatten(image)
        shrink = limits.max_long_side / max(flat.size)  # what is left to shrink after a JPEG's draft
        if shrink < 1:
            flat = flat.resize(
                (max(1, round(flat.width * shrink)), max(1, round(flat.height * shrink))), Image.Resampling.LANCZOS
            )
        rgb = _to_srgb(transpose(flat, orientation), icc)
    clean = Image.new("RGB", rgb.size)  # a new image carries no info dict: nothing can leak into the JPEG
    clean.paste(rgb)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=95)
    jpeg = out.getvalue()
    return PreparedPhoto(
        data=jpeg,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        width=clean.width,
        height=clean.height,
        phash=perceptual_hash(clean),
        source_format=kind,
    )


def find_duplicate(
    photo: PreparedPhoto, existing: list[tuple[int, str, int]], limits: IntakeLimits = IntakeLimits()
) -> int | None:
    """The number of the member's photo that `photo` repeats, or None.

    `existing` is (number, sha256, phash) per photo. An exact copy wins over a near one, and
    among near ones the closest.
    """
    for number, sha, _ in existing:
        if sha == photo.sha256:
            return number
    near = [(hamming(photo.phash, phash), number) for number, _, phash in existing]
    near = [(d, n) for d, n in near if d <= limits.near_duplicate_distance]
    return min(near)[1] if near else None


def check_not_duplicate(
    photo: PreparedPhoto, existing: list[tuple[int, str, int]], limits: IntakeLimits = IntakeLimits()
) -> None:
    """`find_duplicate`, as a refusal in the member's words."""
    number = find_duplicate(photo, existing, limits)
    if number is not None:
        raise Rejected(f"this is the same picture as photo {number}")


def store_photo(photo: PreparedPhoto, root: Path) -> Path:
    """Write the photo at `root/ab/abcdef....jpg`, named by its content, never by anything a user chose.

    The write is atomic (temp file in the same folder, fsync, rename), so a crash leaves either
    the whole photo or nothing; storing the same bytes again returns the same path untouched.
    """
    sha = hashlib.sha256(photo.data).hexdigest()
    if sha != photo.sha256:
        raise ValueError("the photo's sha256 does not match its data")
    path = Path(root) / sha[:2] / f"{sha}.jpg"
    if path.exists():
        return path
    try:
        return atomic_write_bytes(path, photo.data)  # a member's face: readable by the bot's user only
    except OSError as exc:
        _refuse_if_disk_full(exc, root)
        raise


# ---- helpers ----

def _refuse_if_disk_full(exc: OSError, root: Path) -> None:
    """A full disk is said to the member as such (and to the operator at ERROR), not as a failure of the bot."""
    if exc.errno == errno.ENOSPC:
        log.error("a photo could not be stored: the disk of %s is full", root)
        raise Rejected(f"{DISK_FULL}; the bot's operator has been told, try again later") from exc


_DAMAGED = "the file is damaged or cut off, so the picture can't be read"

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}

# Recognised files that are not accepted: (magic, offset, description, is a picture format).
_OTHERS = [
    (b"%PDF", 0, "a PDF", False),
    (b"GIF8", 0, "GIF", True),
    (b"BM", 0, "BMP", True),
    (b"II*\x00", 0, "TIFF", True),
    (b"MM\x00*", 0, "TIFF", True),
    (b"PK\x03\x04", 0, "a ZIP archive", False),
    (b"\x1aE\xdf\xa3", 0, "a video", False),
    (b"MZ", 0, "a program", False),
    (b"\x7fELF", 0, "a program", False),
]


def _sniff(data: bytes) -> str:
    """The accepted format the bytes are, judged from their first bytes alone;
    otherwise a refusal that names what they are."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":  # ISO media: HEIF photos, AVIF pictures, MP4/MOV videos
        box = min(int.from_bytes(data[:4], "big"), len(data), 256)
        brands = {data[8:12]} | {data[i : i + 4] for i in range(16, box - 3, 4)}
        if brands & _HEIF_BRANDS and not brands & {b"avif", b"avis"}:
            if not HEIF_SUPPORTED:
                raise Rejected("this is an HEIC photo, which this server can't read; please send it as a JPEG or PNG")
            return "HEIF"
        if brands & {b"avif", b"avis"}:
            if not AVIF_SUPPORTED:
                raise Rejected(f"this server's image library can't read AVIF; please send the photo as {ACCEPTED}")
            return "AVIF"
        raise Rejected("this is a video, not a photo")
    for magic, offset, what, is_picture in _OTHERS:
        if data[offset : offset + len(magic)] == magic:
            if is_picture:
                raise Rejected(f"{what} pictures aren't accepted; please send the photo as {ACCEPTED}")
            raise Rejected(f"this is {what}, not a photo")
    head = data[:512]
    if not any(b < 9 or 13 < b < 32 for b in head):
        raise Rejected("this is a text file, not a photo")
    raise Rejected(f"this isn't a photo file that can be read; please send a {ACCEPTED}")


def _webp_size(data: bytes) -> tuple[int, int]:
    """A WebP's canvas size from its first chunk (VP8X, VP8 or VP8L), per the WebP container spec."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise Rejected(_DAMAGED)


def _check_png_chunks(data: bytes) -> None:
    """Refuse a PNG whose chunks do not add up to the file or whose checksums (CRC-32) are wrong, before decoding.

    Pillow skips the checksum of the picture data (IDAT), and a changed byte there often still inflates,
    to a picture partly noise. Bytes after the end chunk (IEND) are ignored, as by every reader.
    """
    view, at = memoryview(data), 8  # a view: checking a chunk copies nothing
    while at + 12 <= len(data):
        end = at + 8 + int.from_bytes(data[at : at + 4], "big")
        if end + 4 > len(data):
            break
        if zlib.crc32(view[at + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            raise Rejected(_DAMAGED)
        if data[at + 4 : at + 8] == b"IEND":
            return
        at = end + 4
    raise Rejected(_DAMAGED)  # cut off before its end chunk


def _check_pixels(size: tuple[int, int], cap: int) -> None:
    width, height = size
    if width * height > cap:
        raise Rejected(
            f"the picture is {width}x{height} ({_mp(width * height)} megapixels); the limit is {_mp(cap)} megapixels"
        )


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB, L or CMYK image (the modes an ICC profile can describe): alpha laid on white, 16-bit scaled to 8.

    Called on the full-size decoded picture, so it makes at most one full-size copy (8 bits a channel).
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey; a plain convert would clip it to white
        grey = np.asarray(image)
        out = np.empty(grey.shape, dtype=np.uint8)
        for top in range(0, grey.shape[0], 256):  # in bands: a whole-picture int64 copy would be 8 bytes a pixel
            band = grey[top : top + 256].astype(np.int64)
            out[top : top + 256] = np.clip((band * 255 + 32767) // 65535, 0, 255)  # v/257, rounded
        return Image.fromarray(out, "L")
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode in ("RGB", "L", "CMYK") else image.convert("RGB")


def _decode(image: Image.Image) -> None:
    """Decode the picture: the one place pixels are read. Any failure refuses the file, because Pillow keeps
    what it decoded before the failure and a later call would hand back that partial picture without an error.
    """
    try:
        image.load()
    except Exception:  # hostile input makes decoders raise anything
        raise Rejected(_DAMAGED) from None


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and _SRGB is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
            if converted is not None:  # None only when converting in place
                return converted
        except Exception:  # a broken profile, or one that does not fit the pixels: read them as sRGB
            return image.convert("RGB")
    return image.convert("RGB")


def _size(n: int) -> str:
    unit, name = (MiB, "MB") if n >= MiB else (1024, "KB")
    return f"{round(n / unit, 1):g} {name}"


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.3g}"
