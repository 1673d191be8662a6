"""PNG output with what made the picture written into it."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from trainer.atomic import atomic_write


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
