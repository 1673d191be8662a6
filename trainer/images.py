"""PNG output with what made the picture written into it."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, features
from PIL.PngImagePlugin import PngInfo

from contract.atomic import atomic_write

try:  # HEIC, the iPhone's default; AVIF Pillow reads itself (when built with libavif, as its wheels are)
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False)
except ImportError:  # pragma: no cover - pillow-heif is a dependency
    pass

# What a training folder's photos may be. A JPEG carrying a second picture (MPO: the gain map of an
# Ultra HDR photo, a depth map, a stereo pair) opens as its first picture, the photo itself.
READABLE = f"JPEG (Ultra HDR and MPO too), PNG, WebP, HEIC, {'AVIF, ' if features.check('avif') else ''}BMP or GIF"


def png_bytes(image: Image.Image, info: dict) -> bytes:
    text = PngInfo()
    for key, value in info.items():
        if value not in (None, ""):
            text.add_text(f"doppel:{key}", str(value))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=text)
    return buffer.getvalue()


def save_png(image: Image.Image, path: Path, info: dict) -> Path:
    data = png_bytes(image, info)
    return atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))
