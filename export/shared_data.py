"""Saving a second graph that reads its big tensors from the first graph's file.

A model folder ships the fp32 CPU graph and its fp16 CUDA twin (``export/fp16.py``); both
multiply by the same packed 4- or 8-bit blocks and gather from the same embedding table.
Rather than a second copy, the CUDA graph stores those tensors as ONNX *external data*
whose location is the CPU graph's file (``model.onnx``) at the byte offsets where the CPU
graph keeps them. Protobuf writes a tensor's ``raw_data`` as one contiguous run of bytes,
so a tensor inside ``model.onnx`` is exactly such a range; when the CPU graph itself keeps
its weights in an external file, the CUDA graph points into that file instead. The CPU graph
stays a plain, self-contained ONNX file that every runtime loads as before.

The price: the CUDA graph is only valid next to the very ``model.onnx`` it was saved
against. The manifest hashes both, and the export checks the CUDA graph after writing it.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto
from onnx.external_data_helper import load_external_data_for_tensor

# Field numbers in onnx.proto: ModelProto.graph, GraphProto.initializer, and TensorProto's
# name, raw_data, data_type, external_data (key/value entries: 1, 2).
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_NAME, _TENSOR_RAW, _TENSOR_TYPE, _TENSOR_EXTERNAL = 8, 9, 2, 13
# Small tensors stay inside the graph: ONNX Runtime's shape inference reads shape-like
# constants (axes, split sizes) only from the graph itself, and they cost nothing to repeat.
MIN_SHARED_BYTES = 4096
_LENGTH_DELIMITED, _VARINT, _FIXED64, _FIXED32 = 2, 0, 1, 5


@dataclass(frozen=True)
class StoredTensor:
    """Where a tensor's bytes lie: ``location`` (relative to the graph's folder), offset,
    length, and its element type."""

    location: str
    offset: int
    length: int
    data_type: int


def stored_tensors(graph_path: Path) -> dict[str, StoredTensor]:
    """Every initializer of the ONNX file at ``graph_path`` with the place of its bytes:
    inside the file itself (``raw_data``) or in its external data file."""
    found: dict[str, StoredTensor] = {}
    with graph_path.open("rb") as handle, mmap.mmap(handle.fileno(), 0,
                                                    access=mmap.ACCESS_READ) as buf:
        for field, start, end in _fields(buf, 0, len(buf)):
            if field != _MODEL_GRAPH:
                continue
            for g_field, t_start, t_end in _fields(buf, start, end):
                if g_field == _GRAPH_INITIALIZER:
                    tensor = _stored(buf, t_start, t_end, graph_path.name)
                    if tensor is not None:
                        found[tensor[0]] = tensor[1]
    return found


def _stored(buf: mmap.mmap, start: int, end: int,
            location: str) -> tuple[str, StoredTensor] | None:
    """The name and place of the tensor message in ``buf[start:end]``: its ``raw_data``
    inside this file, or the range its ``external_data`` entries name (graphs over
    protobuf's 2 GB limit keep their weights outside)."""
    name, raw, data_type, external = None, None, 0, {}
    for field, f_start, f_end in _fields(buf, start, end):
        if field == _TENSOR_NAME:
            name = bytes(buf[f_start:f_end]).decode("utf-8")
        elif field == _TENSOR_RAW:
            raw = (f_start, f_end)
        elif field == _TENSOR_TYPE:
            data_type = f_start  # a varint field carries its value in place of a start
        elif field == _TENSOR_EXTERNAL:
            entry = {k: bytes(buf[a:b]).decode("utf-8") for k, a, b in _fields(buf, f_start, f_end)}
            external[entry.get(1, "")] = entry.get(2, "")
    if name is None:
        return None
    if raw is not None:
        return name, StoredTensor(location, raw[0], raw[1] - raw[0], data_type)
    if "location" in external and "length" in external:
        return name, StoredTensor(external["location"], int(external.get("offset", 0)),
                                  int(external["length"]), data_type)
    return None


def _varint(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: mmap.mmap, start: int, end: int):
    """(field number, start, end) of each length-delimited field of the message in
    ``buf[start:end]``; (field number, value, value) for a varint field."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _LENGTH_DELIMITED:
            length, pos = _varint(buf, pos)
            yield field, pos, pos + length
            pos += length
        elif wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield field, value, value
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in an ONNX file")


def save_sharing(model: onnx.ModelProto, path: Path, weights_graph: Path,
                 min_bytes: int = MIN_SHARED_BYTES) -> list[str]:
    """Save ``model`` to ``path``; each initializer of at least ``min_bytes`` whose type and
    bytes equal a tensor that ``weights_graph`` (in the same folder) stores is written as a
    reference to those bytes. Returns the names of the shared tensors. ``model`` itself is
    not changed."""
    if path.parent.resolve() != weights_graph.parent.resolve():
        raise ValueError("both graphs must be in one folder")
    stored = stored_tensors(weights_graph)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    shared = []
    handles: dict[str, mmap.mmap] = {}
    files = []
    try:
        for init in out.graph.initializer:
            if init.data_location == TensorProto.EXTERNAL:
                length = int({e.key: e.value for e in init.external_data}.get("length", 0))
                if length >= min_bytes:
                    shared.append(init.name)  # still where the fp32 graph's saving put it
                    continue
                load_external_data_for_tensor(init, str(weights_graph.parent))
                init.data_location = TensorProto.DEFAULT
                del init.external_data[:]
            place = stored.get(init.name)
            if (place is None or place.data_type != init.data_type
                    or len(init.raw_data) < min_bytes):
                continue
            if place.location not in handles:
                files.append((weights_graph.parent / place.location).open("rb"))
                handles[place.location] = mmap.mmap(files[-1].fileno(), 0,
                                                    access=mmap.ACCESS_READ)
            data = handles[place.location][place.offset:place.offset + place.length]
            if data != init.raw_data:
                continue
            init.ClearField("raw_data")
            init.data_location = TensorProto.EXTERNAL
            del init.external_data[:]
            for key, value in (("location", place.location), ("offset", str(place.offset)),
                               ("length", str(place.length))):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
            shared.append(init.name)
    finally:
        for handle in handles.values():
            handle.close()
        for file in files:
            file.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(out, str(path))
    return shared
