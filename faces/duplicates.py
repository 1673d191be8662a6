"""The same picture twice: a perceptual hash that survives re-encoding and resizing.

The bot refuses a near duplicate at intake and `python -m trainer dataset check` reports one: a picture
twice weights it twice in training.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# 6 of 64 bits: re-encoding, Discord's recompression and resizing move the hash by 0-4 bits, while unrelated
# pictures sit near 32. Different shots of the same person in the same place can come within 10-15, and
# calling one of those "the same picture as photo 3" when it is not would baffle the member, so the threshold
# stays low: a missed duplicate only weights one picture twice, a false one turns away a good photo.
NEAR_DUPLICATE = 6

# 32x32 DCT-II basis (orthonormal), built once.
_K = np.arange(32)
_DCT = np.sqrt(2 / 32) * np.cos(np.pi * (2 * _K[None, :] + 1) * _K[:, None] / 64)
_DCT[0] /= np.sqrt(2)


def perceptual_hash(image: Image.Image) -> int:
    """A 64-bit DCT hash: the signs, against their median, of the 8x8 lowest frequencies of a 32x32 grey copy.

    Low frequencies are the layout of light and dark, which survives resizing and JPEG
    recompression; the detail those change lives in the frequencies thrown away.
    """
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])  # the DC term (overall brightness) would skew the median
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
