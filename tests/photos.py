"""Synthetic photos for tests: a face-like figure on a coloured ground, with captions."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

CAPTIONS = {
    "me-0": "a close-up of [trigger] smiling",
    "me-1": "THGH96 in a garden",
    "me-2": "",  # empty: gets 'photo of THGH96'
}


def face(width: int, height: int, shade: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (60 + shade, 120, 200 - shade))
    draw = ImageDraw.Draw(image)
    cx, cy, r = width // 2, height // 2, min(width, height) // 3
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(235, 190, 160))
    draw.ellipse((cx - r // 2, cy - r // 3, cx - r // 4, cy - r // 8), fill=(30, 30, 30))
    draw.ellipse((cx + r // 4, cy - r // 3, cx + r // 2, cy - r // 8), fill=(30, 30, 30))
    draw.arc((cx - r // 2, cy, cx + r // 2, cy + r // 2), 20, 160, fill=(150, 40, 40), width=3)
    return image


def scene(index: int, width: int = 96, height: int = 96) -> Image.Image:
    """A face in a different place on a different background for each index.

    Photo intake refuses near duplicates by perceptual hash, and faces on plain
    grounds differ too little for it; a seeded blotchy background does not.
    """
    import numpy as np

    rng = np.random.default_rng(index)
    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    r = min(width, height) // 5
    cx = int(rng.integers(r, width - r))
    cy = int(rng.integers(r, height - r))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(235, 190, 160))
    draw.ellipse((cx - r // 2, cy - r // 3, cx - r // 4, cy - r // 8), fill=(30, 30, 30))
    draw.ellipse((cx + r // 4, cy - r // 3, cx + r // 2, cy - r // 8), fill=(30, 30, 30))
    return image


def write_photos(folder: Path) -> Path:
    """Four photos of different shapes and formats; three with caption files."""
    folder.mkdir(parents=True, exist_ok=True)
    face(96, 96, 0).save(folder / "me-0.jpg", quality=90)
    face(128, 96, 20).save(folder / "me-1.png")
    face(80, 112, 40).save(folder / "me-2.webp")
    face(100, 100, 60).save(folder / "me-3.jpg")  # no caption file
    for stem, text in CAPTIONS.items():
        (folder / f"{stem}.txt").write_text(text)
    return folder


# Real photographs for the face checks: they ship inside scikit-image's wheel (no download).


def astronaut() -> Image.Image:
    """One person (512 px, colour, facing the camera)."""
    from skimage import data

    return Image.fromarray(data.astronaut())


def cameraman() -> Image.Image:
    """Another person (512 px, grey, looking down: only the CNN is sure of him)."""
    from skimage import data

    return Image.fromarray(data.camera()).convert("RGB")


def no_face() -> Image.Image:
    """A cup of coffee, small (HOG proposes a region in it, which the CNN then turns down)."""
    from skimage import data

    return Image.fromarray(data.coffee()).resize((384, 256), Image.Resampling.LANCZOS)


def tall_portrait() -> Image.Image:
    """The astronaut's head at the top of a 1:3 portrait: a centred crop to a 1:2 bucket cuts her face off."""
    portrait = Image.new("RGB", (320, 960), (128, 128, 128))
    portrait.paste(astronaut().crop((96, 16, 416, 336)), (0, 0))
    return portrait


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def variants(image: Image.Image) -> dict[str, Image.Image]:
    """The same photo as a member might send it several times: cropped, mirrored, lit differently,
    recompressed, enlarged. Each differs enough from the others not to count as a near duplicate."""
    from PIL import ImageEnhance, ImageOps

    return {
        "crop": image.crop((96, 16, 416, 336)),
        "mirror": ImageOps.mirror(image),
        "bright": ImageEnhance.Brightness(image).enhance(1.4),
        "dark": ImageEnhance.Brightness(image).enhance(0.6),
        "jpeg": jpeg(image.crop((40, 0, 512, 472)), 20),
        "large": image.crop((64, 0, 448, 384)).resize((1024, 1024), Image.Resampling.LANCZOS),
    }


def side_by_side(*images: Image.Image) -> Image.Image:
    """A group picture: the photos next to each other, at the first one's height."""
    height = images[0].height
    scaled = [im.resize((round(im.width * height / im.height), height)) for im in images]
    group = Image.new("RGB", (sum(im.width for im in scaled), height), (128, 128, 128))
    left = 0
    for im in scaled:
        group.paste(im, (left, 0))
        left += im.width
    return group
