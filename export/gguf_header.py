"""A GGUF file read straight from its header: the key-value metadata, the tensor table, and
each tensor's bytes on request.

Why not ``gguf.GGUFReader``: it builds a numpy view for every element of every array, which
for a vocabulary of 128k tokens and 280k merges takes over a minute on a busy 2-core machine
(and the export used to open the file that way several times); reading the header
sequentially takes well under a second. :class:`GgufFile` keeps the file open once and reads
one tensor at a time with ``pread``, so an export of a multi-gigabyte file holds only the
tensor at hand: a memory map would leave every page it touched counted in the process's
resident memory until the map is closed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"GGUF"
# GGUF value types → numpy dtype for fixed-size values (strings = 8, arrays = 9).
_SCALARS = {
    0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
    6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64,
}
_STRING, _ARRAY = 8, 9


class GgufHeaderError(ValueError):
    """The file is not a readable GGUF header (wrong signature, truncated, unknown type)."""


def _exact(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise GgufHeaderError("the header is truncated")
    return data


def _u64(handle: BinaryIO) -> int:
    return struct.unpack("<Q", _exact(handle, 8))[0]


def _string(handle: BinaryIO) -> str:
    return _exact(handle, _u64(handle)).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int) -> Any:
    if kind == _STRING:
        return _string(handle)
    if kind == _ARRAY:
        item_kind = struct.unpack("<I", _exact(handle, 4))[0]
        count = _u64(handle)
        if item_kind in _SCALARS:
            dtype = np.dtype(_SCALARS[item_kind]).newbyteorder("<")
            return np.frombuffer(_exact(handle, count * dtype.itemsize), dtype).tolist()
        return [_value(handle, item_kind) for _ in range(count)]
    if kind not in _SCALARS:
        raise GgufHeaderError(f"unknown value type {kind}")
    dtype = np.dtype(_SCALARS[kind]).newbyteorder("<")
    item = np.frombuffer(_exact(handle, dtype.itemsize), dtype)[0].item()
    return bool(item) if kind == 7 else item


def read_metadata(path: Path) -> dict[str, Any]:
    """Every key of ``path``'s header with its value (arrays as lists)."""
    with Path(path).open("rb") as handle:
        return _read_kv(handle)[1]


def _read_kv(handle: BinaryIO) -> tuple[int, dict[str, Any]]:
    """(tensor count, metadata) from the start of the file."""
    if handle.read(4) != MAGIC:
        raise GgufHeaderError("it does not start with the GGUF signature")
    version = struct.unpack("<I", _exact(handle, 4))[0]
    if version < 2:
        raise GgufHeaderError(f"GGUF version {version} is too old")
    tensors = _u64(handle)
    count = _u64(handle)
    metadata: dict[str, Any] = {}
    for _ in range(count):
        key = _string(handle)
        kind = struct.unpack("<I", _exact(handle, 4))[0]
        metadata[key] = _value(handle, kind)
    return tensors, metadata


#: Element types whose tensors are handed out typed, as ``gguf.GGUFReader`` does; every other
#: type (the quantized blocks, BF16) comes as raw bytes.
_TYPED = {0: np.float32, 1: np.float16, 24: np.int8, 25: np.int16, 26: np.int32, 27: np.int64,
          28: np.float64}


@dataclass(frozen=True)
class GgufTensor:
    """One entry of the tensor table. ``shape`` is in GGUF order (the row length first), as
    ``gguf.GGUFReader`` gives it; ``data`` reads the bytes from the open file."""

    name: str
    shape: tuple[int, ...]
    tensor_type: Any  # gguf.GGMLQuantizationType
    offset: int  # absolute, in the file
    nbytes: int
    file: GgufFile

    @property
    def data(self) -> np.ndarray:
        """The tensor's values (typed for float and integer tensors) or its raw block bytes,
        flat, freshly read."""
        raw = self.file.read(self.offset, self.nbytes)
        dtype = _TYPED.get(int(self.tensor_type))
        return raw.view(dtype) if dtype is not None else raw


class GgufFile:
    """A GGUF file opened once: its metadata, its tensors by name, their bytes on request."""

    def __init__(self, path: Path) -> None:
        import gguf

        self._fd = -1
        self.path = Path(path)
        with self.path.open("rb") as handle:
            count, self.metadata = _read_kv(handle)
            table = []
            for _ in range(count):
                name = _string(handle)
                dims = struct.unpack("<I", _exact(handle, 4))[0]
                shape = struct.unpack(f"<{dims}Q", _exact(handle, 8 * dims))
                kind, offset = struct.unpack("<IQ", _exact(handle, 12))
                table.append((name, shape, kind, offset))
            alignment = int(self.metadata.get("general.alignment", 32))
            start = -(-handle.tell() // alignment) * alignment
        size = self.path.stat().st_size
        self.tensors: dict[str, GgufTensor] = {}
        for name, shape, kind, offset in table:
            try:
                kind = gguf.GGMLQuantizationType(kind)
                block, type_size = gguf.GGML_QUANT_SIZES[kind]
            except (ValueError, KeyError):
                raise GgufHeaderError(f"tensor {name} has the unknown type {kind}") from None
            elements = int(np.prod(shape, dtype=np.int64))
            tensor = GgufTensor(name, tuple(int(d) for d in shape), kind, start + offset,
                                elements // block * type_size, self)
            if tensor.offset + tensor.nbytes > size:
                raise GgufHeaderError("the file is truncated")
            self.tensors[name] = tensor
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    def read(self, offset: int, nbytes: int) -> np.ndarray:
        """``nbytes`` bytes at ``offset`` as a fresh uint8 array."""
        out = np.empty(nbytes, np.uint8)
        view, done = memoryview(out), 0
        while done < nbytes:
            got = self._read_into(view[done:], offset + done)
            if got <= 0:
                raise GgufHeaderError("the file is truncated")
            done += got
        return out

    def _read_into(self, view: memoryview, offset: int) -> int:
        if hasattr(os, "preadv"):
            return os.preadv(self._fd, [view], offset)
        os.lseek(self._fd, offset, os.SEEK_SET)  # Windows has no pread
        data = os.read(self._fd, len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> GgufFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
