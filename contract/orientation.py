"""A picture's EXIF orientation, read from the metadata Pillow has already read: the bot's intake and the
trainer's data loading turn photos upright the same way, without decoding a picture to learn which way is up."""

from __future__ import annotations

import re
from collections.abc import Mapping

from PIL import Image

TRANSPOSE = {  # EXIF orientation -> the turn that makes the picture upright (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
TURNED = frozenset({5, 6, 7, 8})  # the orientations that swap width and height


def exif_orientation(info: Mapping[str | tuple[int, int], object]) -> int:
    """The EXIF orientation (1 to 8) in the metadata Pillow has read; 1 (as stored) when there is none or the
    EXIF cannot be read. Reads `info` only: `Image.getexif` would decode a PNG's pixels to reach its later
    chunks (and its failure would go unseen), so the metadata after a PNG's picture counts once it is decoded.
    """
    exif = Image.Exif()
    raw = info.get("exif")
    if isinstance(raw, bytes):
        try:
            exif.load(raw)
        except Exception:  # unreadable EXIF: metadata only, the picture itself is judged by its decode
            return 1
    value = exif.get(0x0112)
    if value is None:  # as Image.getexif: the orientation of an XMP packet when EXIF has none
        xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
        text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
        found = re.search(r'tiff:Orientation(="|>)([0-9])', text) if isinstance(text, str) else None
        value = int(found[2]) if found else 1
    return value if isinstance(value, int) and value in TRANSPOSE else 1


def transpose(image: Image.Image, orientation: int) -> Image.Image:
    method = TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image
