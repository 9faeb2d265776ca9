"""The int8-cache CPU graph of a fused export: written beside the CPU graph, gated like it.

Why: at long contexts a decode step is mostly attention reading the KV cache, and the fp32
cache's bytes decide its speed (models/README.md, "CPU decode speed": 189 MB per step at
4,096 tokens for the default model). ONNX Runtime's CPU ``GroupQueryAttention`` can keep
the cache in int8 with one fixed scale per key and value channel: it quantizes each new key
and value as it writes them (symmetric, rounded to nearest, clipped to the int8 range) and
attends over the int8 cache directly. A quarter of the bytes; decode at 4,096 tokens about
twice as fast. The price: the scales are fixed at export, and that kernel reads prompts more
slowly (its prompt path does not use a matrix-multiply routine), so the app reads long
prompts through the fp32 CPU graph and rounds the keys and values it writes with the same
scales. It is a choice the user makes (``--kv-cache int8``), not the default.

``onnx/model_int8kv.onnx`` is the CPU graph with those attention nodes and int8 cache inputs
and outputs; it reads every weight from the CPU graph's file (``export/shared_data.py``), so it
adds only the scales, which ``onnx/model_int8kv_scales.npy`` also holds as one array ``[layers,
2 (key, value), kv_heads * head_size]`` for a runtime that writes that cache itself. The scales
come from the CPU graph's own cache on a calibration text (``data/calibration.txt``: chat,
notes, code, several languages), never the gate's text. Keys are cached after the rotary
embedding, which turns each pair of channels (i, i + d/2) by an angle that depends on the
position and keeps the pair's length; a key channel's scale is therefore the longest pair seen,
the largest value the channel can take at any position.

Values are cached rotated: each head's value vector times an orthogonal Hadamard matrix ``R``
(``onnx/model_int8kv_rotation.npy``, ``[head_size, head_size]``), and each head's attention
output is multiplied by ``Rᵀ`` before the output projection, which undoes it exactly (the
attention output is a weighted sum of values, and ``Σ pᵢ vᵢ R = (Σ pᵢ vᵢ) R``). A fixed
per-channel scale rounds a token whose values stand out in a few channels coarsely, or clips
it; the rotation spreads every value over all of its head's channels, so no channel's scale
is set by a few tokens' outliers. On Markdown full of tables and code that halves what the
int8 cache moves the predictions by (models/README.md, "The int8 KV cache"). Keys are not
rotated: the rotary embedding inside the attention node would not commute with it, and their
per-channel scales already follow their consistent outlier channels. A value channel's scale
is the largest magnitude of the rotated channel. The export then runs the quality gate on
this graph too, against the same reference as the shipped graph, and ships it only if it
passes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.errors import first_line
from export.onnx_files import (
    INT8_CACHE_FILE,
    INT8_CACHE_ROTATION_FILE,
    INT8_CACHE_SCALES_FILE,
    PAST_PREFIX,
    PRESENT_PREFIX,
    empty_past,
    make_session,
)
from export.shared_data import save_sharing
from export.validation import ValidationResult

CALIBRATION_TEXT = Path(__file__).with_name("data") / "calibration.txt"
#: Calibration tokens (one prompt through the CPU graph); the text has about 1,100 for the
#: default model's tokenizer.
CALIBRATION_TOKENS = 1024
#: ``GroupQueryAttention``'s inputs k_scale and v_scale (after cos/sin caches, position ids,
#: attention bias and head sink, which the fused graph leaves empty or does not use).
_K_SCALE_INPUT = 12
_INT8_MAX = 127.0


def calibration_text() -> str:
    return CALIBRATION_TEXT.read_text(encoding="utf-8")


def value_rotation(head_size: int) -> np.ndarray:
    """The orthogonal ``[head_size, head_size]`` matrix each head's values are cached rotated
    by: the normalised Sylvester-Hadamard matrix of the largest power of two dividing
    ``head_size`` (all of it for 64 or 128), repeated along the diagonal (three of 32 for 96).
    Symmetric, so it is its own inverse."""
    block = head_size & -head_size
    hadamard = np.ones((1, 1))
    while hadamard.shape[0] < block:
        hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
    return np.kron(np.eye(head_size // block), hadamard / np.sqrt(block)).astype(np.float32)


def cache_scales(cpu_graph: Path, token_ids: list[int]) -> dict[int, tuple[np.ndarray,
                                                                          np.ndarray]]:
    """Per layer, the key and the rotated value scales ``[kv_heads * head_size]`` from the
    CPU graph's cache after one prompt of ``token_ids``."""
    session = make_session(cpu_graph)
    past = empty_past(session)
    ids = np.asarray(token_ids, dtype=np.int64).reshape(1, -1)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), **past}
    names = [o.name for o in session.get_outputs() if o.name.startswith(PRESENT_PREFIX)]
    present = dict(zip(names, session.run(names, feeds), strict=True))
    scales = {}
    for name, keys in present.items():
        if not name.endswith(".key"):
            continue
        layer = int(name[len(PRESENT_PREFIX):].split(".")[0])
        values = present[name[: -len("key")] + "value"]
        half = keys.shape[-1] // 2
        pair = np.sqrt(keys[..., :half] ** 2 + keys[..., half:] ** 2).max(axis=(0, 2))
        key_max = np.concatenate([pair, pair], axis=-1)  # [kv_heads, head_size]
        value_max = np.abs(values @ value_rotation(values.shape[-1])).max(axis=(0, 2))
        scales[layer] = tuple(  # a channel that never moved still needs a usable scale
            (np.maximum(m, 1e-6) / _INT8_MAX).astype(np.float32).reshape(-1)
            for m in (key_max, value_max))
    return scales


def int8_cache_model(model: onnx.ModelProto,
                     scales: dict[int, tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """A copy of the fused ``model`` whose attention keeps an int8 cache with ``scales``, its
    values rotated (:func:`value_rotation`); raise :class:`ValueError` for a graph whose
    attention nodes do not match its cache."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    found: set[int] = set()
    constants: dict[str, np.ndarray] = {}
    nodes = []
    for node in out.graph.node:
        if node.op_type != "GroupQueryAttention":
            nodes.append(node)
            continue
        present = node.output[1] if len(node.output) > 1 else ""
        if not present.startswith(PRESENT_PREFIX) or present.count(".") != 2:
            raise ValueError(f"attention node {node.name} does not write a layer's cache")
        layer = int(present.split(".")[1])
        if layer not in scales or layer in found:
            raise ValueError(f"attention node {node.name}: no calibrated scales for layer "
                             f"{layer}")
        if any(a.name in ("k_quant_type", "v_quant_type") for a in node.attribute):
            raise ValueError(f"attention node {node.name} already quantizes its cache")
        if len(node.input) > _K_SCALE_INPUT:
            raise ValueError(f"attention node {node.name} already uses inputs past its "
                             "cache scales")
        if any(node.input[1:3]):
            raise ValueError(f"attention node {node.name} takes its keys and values apart "
                             "from its queries")
        found.add(layer)
        names = (f"int8kv.{layer}.k_scale", f"int8kv.{layer}.v_scale")
        for name, value in zip(names, scales[layer], strict=True):
            out.graph.initializer.append(numpy_helper.from_array(value, name))
        while len(node.input) < _K_SCALE_INPUT:
            node.input.append("")
        node.input.extend(names)
        node.attribute.extend([
            helper.make_attribute("k_quant_type", "PER_CHANNEL"),
            helper.make_attribute("v_quant_type", "PER_CHANNEL"),
            helper.make_attribute("kv_cache_bit_width", 8),
        ])
        heads, kv_heads = (helper.get_attribute_value(a) for name in ("num_heads", "kv_num_heads")
                           for a in node.attribute if a.name == name)
        head_size = scales[layer][1].size // kv_heads
        before, after = _rotated_values(node, layer, heads, kv_heads, head_size, constants)
        nodes.extend([*before, node, *after])
    if found != set(scales):
        raise ValueError(f"the graph has attention for {len(found)} of {len(scales)} layers")
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(numpy_helper.from_array(value, name)
                                 for name, value in constants.items())
    for value in (*out.graph.input, *out.graph.output):
        if value.name.startswith((PAST_PREFIX, PRESENT_PREFIX)):
            value.type.tensor_type.elem_type = TensorProto.INT8
    return out


def _rotated_values(node: onnx.NodeProto, layer: int, heads: int, kv_heads: int,
                    head_size: int, constants: dict[str, np.ndarray],
                    ) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """The nodes before ``node`` (the attention of ``layer``) that split its packed
    projections and rotate each value head, and the nodes after it that rotate each head of
    its output back; ``node``'s first inputs and output are rewired to them. The constants
    they read are added to ``constants`` once for all layers of one shape."""
    rotation = value_rotation(head_size)
    tag = f"{heads}x{kv_heads}x{head_size}"
    split, values_by, output_by, heads_shape, hidden_shape = (
        f"int8kv.{name}.{tag}" for name in
        ("qkv_split", "value_rotation", "output_rotation", "heads_shape", "hidden_shape"))
    constants.setdefault(split, np.array([heads, kv_heads, kv_heads], np.int64) * head_size)
    constants.setdefault(values_by, np.kron(np.eye(kv_heads, dtype=np.float32), rotation))
    constants.setdefault(output_by, np.ascontiguousarray(rotation.T))
    constants.setdefault(heads_shape, np.array([0, 0, heads, head_size], np.int64))
    constants.setdefault(hidden_shape, np.array([0, 0, heads * head_size], np.int64))
    prefix = f"int8kv.{layer}"
    query, key, value = (f"{prefix}.{name}" for name in ("query", "key", "value"))
    before = [
        helper.make_node("Split", [node.input[0], split], [query, key, value], axis=-1,
                         name=f"{prefix}/Split"),
        helper.make_node("MatMul", [value, values_by], [f"{prefix}.value_rotated"],
                         name=f"{prefix}/RotateValues"),
    ]
    node.input[0], node.input[1], node.input[2] = query, key, f"{prefix}.value_rotated"
    output = node.output[0]
    node.output[0] = f"{prefix}.attention_rotated"
    after = [
        helper.make_node("Reshape", [node.output[0], heads_shape], [f"{prefix}.heads"],
                         name=f"{prefix}/Heads"),
        helper.make_node("MatMul", [f"{prefix}.heads", output_by], [f"{prefix}.heads_back"],
                         name=f"{prefix}/RotateBack"),
        helper.make_node("Reshape", [f"{prefix}.heads_back", hidden_shape], [output],
                         name=f"{prefix}/Hidden"),
    ]
    return before, after


def write_int8_cache_graph(cpu_graph: Path, token_ids: list[int]) -> Path:
    """Calibrate on ``token_ids`` and save the int8-cache twin of the fused graph at
    ``cpu_graph`` beside it, its weights read from the CPU graph's file, its scales as one
    array beside it (``INT8_CACHE_SCALES_FILE``) and its value rotation as another
    (``INT8_CACHE_ROTATION_FILE``)."""
    scales = cache_scales(cpu_graph, token_ids)
    model = onnx.load(str(cpu_graph), load_external_data=False)
    path = cpu_graph.with_name(INT8_CACHE_FILE)
    save_sharing(int8_cache_model(model, scales), path, cpu_graph)
    table = np.stack([np.stack(scales[layer]) for layer in sorted(scales)])
    np.save(path.with_name(INT8_CACHE_SCALES_FILE), table.astype(np.float32),
            allow_pickle=False)
    head_size = table.shape[-1] // _kv_heads(model)
    np.save(path.with_name(INT8_CACHE_ROTATION_FILE), value_rotation(head_size),
            allow_pickle=False)
    return path


def _kv_heads(model: onnx.ModelProto) -> int:
    node = next(n for n in model.graph.node if n.op_type == "GroupQueryAttention")
    return next(helper.get_attribute_value(a) for a in node.attribute
                if a.name == "kv_num_heads")


def _remove(graph: Path) -> None:
    """Delete an int8-cache graph that is not shipped, its scales and its rotation."""
    graph.unlink(missing_ok=True)
    for name in (INT8_CACHE_SCALES_FILE, INT8_CACHE_ROTATION_FILE):
        graph.with_name(name).unlink(missing_ok=True)


def int8_cache_entry(cpu_graph: Path, tokenizer: Any,
                     gate_of: Callable[[Path], ValidationResult], context: int) -> dict[str, Any]:
    """Write, calibrate and gate the int8-cache graph of the fused graph at ``cpu_graph``;
    its ``onnx.graphs`` entry (models/README.md), or ``{"reason": ...}`` when it is not
    shipped (then no file is left behind)."""
    ids = tokenizer.encode(calibration_text(), add_special_tokens=False).ids
    ids = ids[: min(CALIBRATION_TOKENS, context)]
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        Fail,
        InvalidArgument,
        NotImplemented,
        RuntimeException,
    )

    try:
        path = write_int8_cache_graph(cpu_graph, ids)
    except ValueError as exc:
        return {"reason": f"its attention cannot keep an int8 cache ({exc})"}
    try:
        result = gate_of(path)
    except (Fail, InvalidArgument, NotImplemented, RuntimeException) as exc:
        _remove(path)
        return {"reason": "ONNX Runtime cannot run its int8 attention "
                          f"({first_line(exc)[:200]})"}
    if not result.passed:
        _remove(path)
        return {"reason": f"it fails the quality gate ({result.summary()})"}
    figures = {key: value for key, value in (result.source or {}).items()
               if key in ("nll_per_byte", "source_nll_per_byte", "nll_ratio")}
    return {
        "file": f"onnx/{INT8_CACHE_FILE}",
        "scales": f"onnx/{INT8_CACHE_SCALES_FILE}",
        "value_rotation": f"onnx/{INT8_CACHE_ROTATION_FILE}",
        "dtype": "float32",
        "cache_dtype": "int8",
        "weights_from": f"onnx/{cpu_graph.name}",
        "calibration": {"text": f"export/data/{CALIBRATION_TEXT.name}", "tokens": len(ids)},
        "validation": {"reference": result.reference, "tokens": result.tokens,
                       "perplexity": result.perplexity,
                       "perplexity_ratio": result.perplexity_ratio,
                       "top1_agreement": result.top1_agreement, **figures},
    }
