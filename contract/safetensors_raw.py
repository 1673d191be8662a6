"""safetensors files read and written as bytes, without torch and whatever their dtype (bfloat16 included,
which numpy cannot hold): enough to rename, join and pad LoRA weights, and to look at a file before trusting it.

A safetensors file is the header's length (8 bytes, little-endian), the header (JSON: each tensor's dtype,
shape and byte range, and `__metadata__`, strings), then the tensors' bytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
              "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
MAX_HEADER = 16 * 2**20  # a header of 5,000 tensors is about 0.5 MiB: more is not a LoRA, and costs to parse


class NotSafetensors(ValueError):
    """The bytes are not a safetensors file (why, in words)."""


@dataclass(frozen=True)
class Tensor:
    dtype: str
    shape: tuple[int, ...]
    data: bytes

    def bits(self) -> np.ndarray:
        """The raw elements as unsigned integers of the dtype's width: zeros are zero in every float format."""
        return np.frombuffer(self.data, dtype=f"<u{ITEM_SIZES[self.dtype]}").reshape(self.shape)

    @classmethod
    def of_bits(cls, dtype: str, bits: np.ndarray) -> Tensor:
        return cls(dtype, tuple(int(n) for n in bits.shape), np.ascontiguousarray(bits).tobytes())

    @classmethod
    def scalar_f32(cls, value: float) -> Tensor:
        return cls("F32", (), struct.pack("<f", value))


def read_header(data: bytes) -> tuple[dict[str, dict], dict[str, str], int]:
    """(tensor entries by name, metadata, where the tensors' bytes start) of a file's first bytes."""
    if len(data) < 8:
        raise NotSafetensors("it is too short to be a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER or 8 + length > len(data):
        raise NotSafetensors("its header is not that of a safetensors file")
    try:
        header = json.loads(data[8 : 8 + length])
    except (ValueError, UnicodeDecodeError):
        raise NotSafetensors("its header is not JSON, so it is not a safetensors file") from None
    if not isinstance(header, dict):
        raise NotSafetensors("its header is not that of a safetensors file")
    metadata = header.pop("__metadata__", None) or {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in ITEM_SIZES or "data_offsets" not in entry:
            raise NotSafetensors(f"its entry '{name}' is not a tensor")
    return header, metadata, 8 + length


def read(data: bytes) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Every tensor of a safetensors file's bytes, and its metadata."""
    header, metadata, start = read_header(data)
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        shape = tuple(int(n) for n in entry["shape"])
        if not 0 <= begin <= end <= len(data) - start or end - begin != ITEM_SIZES[entry["dtype"]] * _count(shape):
            raise NotSafetensors(f"its tensor '{name}' does not fit the file")
        tensors[name] = Tensor(entry["dtype"], shape, data[start + begin : start + end])
    return tensors, metadata


def read_file(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    return read(Path(path).read_bytes())


def encode(tensors: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, tensor in tensors.items():
        header[name] = {"dtype": tensor.dtype, "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(tensor.data)]}
        offset += len(tensor.data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format aligns the tensors' bytes to 8
    return struct.pack("<Q", len(text)) + text + b"".join(t.data for t in tensors.values())


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= n
    return count
