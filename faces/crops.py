"""Training crops that keep the member's face in the frame, and leave other people's out where they can.

A training crop has its bucket's shape. Centred, it cuts the face off a tall portrait whose face is near
the top; here the window goes as near the centre as it can while still holding the face (with a margin for
hair and chin). With other faces in the photo the window shrinks, around the member's face, until none of
theirs is in it: a crop rather than a loss mask over the others, because a masked face still shows in the
picture the model conditions on and its caption, and Flux learns whole scenes, so the friend would still
be learnt as the member's context; a crop simply leaves them out (and costs nothing at training time).
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[int, int, int, int]  # left, top, right, bottom

FACE_MARGIN = 0.25  # of the face's height, kept around the detector's tight box (hair, chin, ears)
SHRINK = 0.92  # each step of the search for a window without the others' faces
SMALLEST = 1.6  # the window never gets tighter than this many times the face with its margin


def with_margin(face: Box, size: tuple[int, int]) -> Box:
    left, top, right, bottom = face
    pad = round((bottom - top) * FACE_MARGIN)
    return max(0, left - pad), max(0, top - pad), min(size[0], right + pad), min(size[1], bottom + pad)


def crop_box(size: tuple[int, int], shape: tuple[int, int], face: Box | None = None,
             others: Sequence[Box] = ()) -> Box:
    """The window, with `shape`'s width:height, to cut from a picture of `size` for training.

    No face: the largest centred window (what a plain centre crop takes). A face: the largest window, as
    near the centre as it can be while holding the face and its margin. Other faces: the largest window
    around the face that holds none of them (as far as SMALLEST allows).
    """
    width, height = size
    ratio = shape[0] / shape[1]
    full = (width, round(width / ratio)) if width / height < ratio else (round(height * ratio), height)
    if face is None:
        return _place(size, full, None)
    keep = with_margin(face, size)
    window = full
    if others:
        least = SMALLEST * max(keep[2] - keep[0], (keep[3] - keep[1]) * ratio)
        while True:
            box = _place(size, window, keep, around=True)
            if not any(_overlap(box, other) for other in others) or window[0] * SHRINK < least:
                return box
            window = (round(window[0] * SHRINK), round(window[1] * SHRINK))
    return _place(size, window, keep)


def _place(size: tuple[int, int], window: tuple[int, int], keep: Box | None, around: bool = False) -> Box:
    """Where a window of `window` size goes: centred on the picture (or on `keep`, `around`), then moved the
    least to hold `keep` where it can."""
    width, height = min(window[0], size[0]), min(window[1], size[1])
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    if keep is not None and around:
        left, top = (keep[0] + keep[2] - width) // 2, (keep[1] + keep[3] - height) // 2
    if keep is not None:
        left = _slide(left, width, keep[0], keep[2], size[0])
        top = _slide(top, height, keep[1], keep[3], size[1])
    return left, top, left + width, top + height


def _slide(start: int, length: int, low: int, high: int, limit: int) -> int:
    """Move [start, start+length) the least so it holds [low, high), or centre it on that when too short."""
    if high - low > length:
        start = (low + high - length) // 2
    elif start > low:
        start = low
    elif start + length < high:
        start = high - length
    return max(0, min(start, limit - length))


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
