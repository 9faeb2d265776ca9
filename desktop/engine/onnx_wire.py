"""Just enough of ONNX's protobuf encoding to read and edit a model's graph without the
``onnx`` package, which the app does not ship (it belongs to the export extra).

A model file is a ``ModelProto`` in protobuf's wire format: a sequence of fields, each a
varint key (field number × 8 + wire type) followed by a varint, a fixed 4 or 8 bytes, or a
length-prefixed payload that may itself be a message. Editing one nested message means
re-encoding it and every message around it, and copying all other fields byte for byte —
which is all :mod:`desktop.engine.folding` needs: drop some nodes, rename their inputs and
outputs, add a few small nodes and int64 constants, and move external-data offsets. Field
numbers are onnx.proto's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# onnx.proto field numbers used here
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT = 1, 5, 11, 12
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE = 1, 2, 3, 4, 5
ATTRIBUTE_NAME, ATTRIBUTE_INT = 1, 3
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_INT64_DATA, TENSOR_NAME = 1, 2, 7, 8
TENSOR_RAW_DATA, TENSOR_EXTERNAL_DATA = 9, 13
ENTRY_KEY, ENTRY_VALUE = 1, 2
#: ``TensorProto.DataType`` of int64
INT64 = 7
VALUE_INFO_NAME = 1

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not the protobuf message they were read as."""


@dataclass(frozen=True)
class Field:
    """One field of a message: its number, wire type, value (an int, or the payload's
    bounds for a length-delimited field) and the bounds of the whole encoded field."""

    number: int
    wire_type: int
    value: int
    start: int
    end: int
    payload_start: int = 0

    def payload(self, buffer: memoryview) -> memoryview:
        return buffer[self.payload_start:self.end]


def _varint(buffer: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fields(buffer: memoryview) -> Iterator[Field]:
    """The fields of one message, in order."""
    pos = 0
    while pos < len(buffer):
        start = pos
        key, pos = _varint(buffer, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _varint(buffer, pos)
            yield Field(number, wire_type, value, start, pos)
        elif wire_type == _LENGTH:
            length, pos = _varint(buffer, pos)
            if pos + length > len(buffer):
                raise WireError("a length-delimited field runs past its message")
            yield Field(number, wire_type, length, start, pos + length, pos)
            pos += length
        elif wire_type in (_FIXED64, _FIXED32):
            pos += 8 if wire_type == _FIXED64 else 4
            yield Field(number, wire_type, 0, start, pos)
        else:
            raise WireError(f"unsupported wire type {wire_type}")


def length_field(number: int, payload: bytes | memoryview) -> bytes:
    """A length-delimited field (a string, bytes, or an embedded message)."""
    return encode_varint(number << 3 | _LENGTH) + encode_varint(len(payload)) + bytes(payload)


def strings(buffer: memoryview, number: int) -> list[str]:
    return [bytes(f.payload(buffer)).decode("utf-8") for f in fields(buffer)
            if f.number == number and f.wire_type == _LENGTH]


def string(buffer: memoryview, number: int) -> str:
    found = strings(buffer, number)
    return found[-1] if found else ""


def messages(buffer: memoryview, number: int) -> list[memoryview]:
    return [f.payload(buffer) for f in fields(buffer)
            if f.number == number and f.wire_type == _LENGTH]


def ints(buffer: memoryview, number: int) -> list[int]:
    """A repeated integer field, packed or not."""
    values: list[int] = []
    for f in fields(buffer):
        if f.number != number:
            continue
        if f.wire_type == _VARINT:
            values.append(f.value)
        elif f.wire_type == _LENGTH:
            payload, pos = f.payload(buffer), 0
            while pos < len(payload):
                value, pos = _varint(payload, pos)
                values.append(value)
    return values


def rewrite(buffer: memoryview, edit: Callable[[Field], bytes | None]) -> bytes:
    """The message with each field replaced by ``edit(field)``: bytes to put in its place
    (empty to drop it), or None to keep it as it is."""
    out = bytearray()
    for f in fields(buffer):
        replaced = edit(f)
        out += buffer[f.start:f.end] if replaced is None else replaced
    return bytes(out)


def rewrite_graph(model: memoryview, edit_graph: Callable[[memoryview], bytes]) -> bytes:
    """The model with its graph replaced by ``edit_graph(graph)``."""
    def edit(f: Field) -> bytes | None:
        if f.number == MODEL_GRAPH and f.wire_type == _LENGTH:
            return length_field(MODEL_GRAPH, edit_graph(f.payload(model)))
        return None
    return rewrite(model, edit)


def graph_of(model: memoryview) -> memoryview:
    found = messages(model, MODEL_GRAPH)
    if not found:
        raise WireError("the file has no graph")
    return found[-1]


def external_data(tensor: memoryview) -> dict[str, str]:
    """A tensor's external-data entries (``location``, ``offset``, ``length``, …)."""
    return {string(entry, ENTRY_KEY): string(entry, ENTRY_VALUE)
            for entry in messages(tensor, TENSOR_EXTERNAL_DATA)}


def with_external_data(tensor: memoryview, entries: dict[str, str]) -> bytes:
    """The tensor with its external-data entries replaced by ``entries`` (in that order)."""
    kept = rewrite(tensor, lambda f: b"" if f.number == TENSOR_EXTERNAL_DATA else None)
    return kept + b"".join(
        length_field(TENSOR_EXTERNAL_DATA,
                     length_field(ENTRY_KEY, key.encode()) + length_field(ENTRY_VALUE,
                                                                          value.encode()))
        for key, value in entries.items())


@dataclass(frozen=True)
class Node:
    """A node as the folding reads it (its encoded bytes kept for copying)."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, int]
    encoded: memoryview


def read_node(encoded: memoryview) -> Node:
    attributes = {}
    for attribute in messages(encoded, NODE_ATTRIBUTE):
        values = [f.value for f in fields(attribute)
                  if f.number == ATTRIBUTE_INT and f.wire_type == _VARINT]
        if values:
            attributes[string(attribute, ATTRIBUTE_NAME)] = values[-1]
    return Node(string(encoded, NODE_NAME), string(encoded, NODE_OP_TYPE),
                strings(encoded, NODE_INPUT), strings(encoded, NODE_OUTPUT), attributes,
                encoded)


def with_outputs(node: Node, outputs: list[str]) -> bytes:
    """The node's encoding with its outputs renamed to ``outputs``."""
    names = iter(outputs)
    return rewrite(node.encoded, lambda f: length_field(NODE_OUTPUT, next(names).encode())
                   if f.number == NODE_OUTPUT else None)


def with_inputs(node: Node, inputs: list[str]) -> bytes:
    """The node's encoding with its inputs renamed to ``inputs`` (as many as it has)."""
    if len(inputs) != len(node.inputs):
        raise WireError(f"node {node.name} has {len(node.inputs)} inputs, not {len(inputs)}")
    names = iter(inputs)
    return rewrite(node.encoded, lambda f: length_field(NODE_INPUT, next(names).encode())
                   if f.number == NODE_INPUT else None)


def node(op_type: str, inputs: list[str], outputs: list[str], name: str) -> bytes:
    """A ``NodeProto`` of the default domain without attributes."""
    return (b"".join(length_field(NODE_INPUT, i.encode()) for i in inputs)
            + b"".join(length_field(NODE_OUTPUT, o.encode()) for o in outputs)
            + length_field(NODE_NAME, name.encode()) + length_field(NODE_OP_TYPE,
                                                                    op_type.encode()))


def int64_values(tensor: memoryview) -> list[int]:
    """An int64 ``TensorProto``'s values, stored as raw data or as ``int64_data``."""
    raw = messages(tensor, TENSOR_RAW_DATA)
    if raw:
        return np.frombuffer(bytes(raw[-1]), "<i8").tolist()
    # int64_data: varints, negative ones as 64-bit two's complement
    return [v - (1 << 64) if v >= 1 << 63 else v for v in ints(tensor, TENSOR_INT64_DATA)]


def int64_tensor(name: str, values: list[int]) -> bytes:
    """A one-dimensional int64 ``TensorProto`` with its values as raw data."""
    return (encode_varint(TENSOR_DIMS << 3 | _VARINT) + encode_varint(len(values))
            + encode_varint(TENSOR_DATA_TYPE << 3 | _VARINT) + encode_varint(INT64)
            + length_field(TENSOR_NAME, name.encode())
            + length_field(TENSOR_RAW_DATA, np.asarray(values, "<i8").tobytes()))
