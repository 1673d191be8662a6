"""One picture of all a member's photos: numbered thumbnails with their captions, in text that reads at the
width Discord shows it."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

THUMB = 160
CAPTION_LINES = 3
COLUMNS = 4
AMBER = (250, 166, 26)
# Discord shows a picture in a message about this wide: the text is sized to be READABLE px tall there.
DISCORD_WIDTH = 640
READABLE = 12


def text_size(sheet_width: int) -> int:
    return max(READABLE, math.ceil(READABLE * sheet_width / DISCORD_WIDTH))


def contact_sheet(photos: list[tuple[int, str, str]], marks: Sequence[tuple[str, bool]] = ()) -> bytes:
    """photos: (number, path, caption); marks: for each photo, its face check's verdict in a few words and
    whether training leaves it out (drawn in amber, with an amber frame). Returns a PNG. Blocking: call in a
    thread."""
    columns = min(COLUMNS, max(1, len(photos)))
    cell_w = THUMB + 16
    size = text_size(columns * cell_w)
    font = ImageFont.load_default(size=size)
    line_height = round(size * 1.25)
    characters = int(THUMB / (size * 0.55))  # what fits a line under a thumbnail
    verdict_lines = 1 if marks else 0
    cell_h = THUMB + 24 + (CAPTION_LINES + verdict_lines) * line_height
    rows = (len(photos) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, max(1, rows) * cell_h), (32, 34, 37))
    draw = ImageDraw.Draw(sheet)
    for index, (number, path, caption) in enumerate(photos):
        x, y = (index % columns) * cell_w + 8, (index // columns) * cell_h + 8
        with Image.open(path) as photo:
            thumb = ImageOps.contain(photo.convert("RGB"), (THUMB, THUMB))
        sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y))
        draw.rectangle((x, y, x + size * 2, y + line_height), fill=(88, 101, 242))
        draw.text((x + 4, y + 1), str(number), fill="white", font=font)
        top = y + THUMB + 6
        if marks:
            verdict, left_out = marks[index]
            colour = AMBER if left_out else (150, 200, 150)
            if left_out:
                draw.rectangle((x - 3, y - 3, x + THUMB + 2, y + THUMB + 2), outline=AMBER, width=2)
            draw.text((x, top), textwrap.shorten(verdict, width=characters, placeholder="…"), fill=colour, font=font)
            top += line_height
        wrapped = textwrap.wrap(caption or "(no caption)", width=characters)[:CAPTION_LINES]
        for line_number, line in enumerate(wrapped):
            draw.text((x, top + line_number * line_height), line, fill=(220, 221, 222), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
