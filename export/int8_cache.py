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
the largest value the channel can take at any position. A value channel's scale is its largest
magnitude. The export then runs the quality gate on this graph too, against the same reference
as the shipped graph, and ships it only if it passes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.onnx_files import (
    INT8_CACHE_FILE,
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


def cache_scales(cpu_graph: Path, token_ids: list[int]) -> dict[int, tuple[np.ndarray,
                                                                          np.ndarray]]:
    """Per layer, the key and value scales ``[kv_heads * head_size]`` from the CPU graph's
    cache after one prompt of ``token_ids``."""
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
        value_max = np.abs(values).max(axis=(0, 2))
        scales[layer] = tuple(  # a channel that never moved still needs a usable scale
            (np.maximum(m, 1e-6) / _INT8_MAX).astype(np.float32).reshape(-1)
            for m in (key_max, value_max))
    return scales


def int8_cache_model(model: onnx.ModelProto,
                     scales: dict[int, tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """A copy of the fused ``model`` whose attention keeps an int8 cache with ``scales``;
    raise :class:`ValueError` for a graph whose attention nodes do not match its cache."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    found = set()
    for node in out.graph.node:
        if node.op_type != "GroupQueryAttention":
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
    if found != set(scales):
        raise ValueError(f"the graph has attention for {len(found)} of {len(scales)} layers")
    for value in (*out.graph.input, *out.graph.output):
        if value.name.startswith((PAST_PREFIX, PRESENT_PREFIX)):
            value.type.tensor_type.elem_type = TensorProto.INT8
    return out


def write_int8_cache_graph(cpu_graph: Path, token_ids: list[int]) -> Path:
    """Calibrate on ``token_ids`` and save the int8-cache twin of the fused graph at
    ``cpu_graph`` beside it, its weights read from the CPU graph's file, and its scales as
    one array beside it (``INT8_CACHE_SCALES_FILE``)."""
    scales = cache_scales(cpu_graph, token_ids)
    model = onnx.load(str(cpu_graph), load_external_data=False)
    path = cpu_graph.with_name(INT8_CACHE_FILE)
    save_sharing(int8_cache_model(model, scales), path, cpu_graph)
    table = np.stack([np.stack(scales[layer]) for layer in sorted(scales)])
    np.save(path.with_name(INT8_CACHE_SCALES_FILE), table.astype(np.float32),
            allow_pickle=False)
    return path


def _remove(graph: Path) -> None:
    """Delete an int8-cache graph that is not shipped, and its scales."""
    graph.unlink(missing_ok=True)
    graph.with_name(INT8_CACHE_SCALES_FILE).unlink(missing_ok=True)


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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"reason": f"ONNX Runtime cannot run its int8 attention ({first[:200]})"}
    if not result.passed:
        _remove(path)
        return {"reason": f"it fails the quality gate ({result.summary()})"}
    figures = {key: value for key, value in (result.source or {}).items()
               if key in ("nll_per_byte", "source_nll_per_byte", "nll_ratio")}
    return {
        "file": f"onnx/{INT8_CACHE_FILE}",
        "scales": f"onnx/{INT8_CACHE_SCALES_FILE}",
        "dtype": "float32",
        "cache_dtype": "int8",
        "weights_from": f"onnx/{cpu_graph.name}",
        "calibration": {"text": f"export/data/{CALIBRATION_TEXT.name}", "tokens": len(ids)},
        "validation": {"reference": result.reference, "tokens": result.tokens,
                       "perplexity": result.perplexity,
                       "perplexity_ratio": result.perplexity_ratio,
                       "top1_agreement": result.top1_agreement, **figures},
    }
