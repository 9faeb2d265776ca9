"""The int8-cache CPU graph a fused export ships beside its CPU graph (export/int8_cache.py).

Checked three ways: the default export's graph passed the same gate as the shipped graph,
against the same references (the fp32 export, llama.cpp on the GGUF); the graph differs from
the CPU graph only in its attention nodes, the nodes that rotate values into the cache and
back out of the attention, and its cache types, and reads its weights from the CPU graph's
file; and ONNX Runtime's int8 attention stores exactly the fp32 graph's keys, and its values
rotated, rounded to the calibrated scales.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from tokenizers import Tokenizer

from export.int8_cache import (
    CALIBRATION_TEXT,
    cache_scales,
    int8_cache_entry,
    int8_cache_model,
    value_rotation,
    write_int8_cache_graph,
)
from export.onnx_files import (
    INT8_CACHE_FILE,
    INT8_CACHE_ROTATION_FILE,
    INT8_CACHE_SCALES_FILE,
    empty_past,
    make_session,
)
from export.shared_data import stored_tensors
from export.validation import ValidationGate, validate

PROMPT = [5, 17, 42, 99, 3, 250, 7, 64, 128, 11, 300, 2, 61, 9, 77, 180, 33, 240, 8, 150]


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def prompt_cache(graph: Path, ids: list[int]) -> dict[str, np.ndarray]:
    """The present keys and values of one prompt through ``graph`` (fresh cache)."""
    session = make_session(graph)
    feeds = {"input_ids": np.asarray([ids], np.int64),
             "attention_mask": np.ones((1, len(ids)), np.int64), **empty_past(session)}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.fixture
def tiny_copy(tiny_llama_fused_model: Path, tmp_path: Path) -> Path:
    """A copy of the tiny fused model folder without an int8-cache graph (its export may
    have kept one): the tests write their own."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_fused_model, folder)
    for name in (INT8_CACHE_FILE, INT8_CACHE_SCALES_FILE, INT8_CACHE_ROTATION_FILE):
        (folder / "onnx" / name).unlink(missing_ok=True)
    return folder


def test_the_default_export_ships_a_gated_int8_cache_graph(default_model: Path) -> None:
    manifest = manifest_of(default_model)
    entry = manifest["onnx"]["graphs"]["cpu-int8kv"]
    assert entry["file"] == f"onnx/{INT8_CACHE_FILE}"
    assert (default_model / entry["file"]).is_file()
    assert entry["file"] in manifest["files"]
    assert entry["cache_dtype"] == "int8" and entry["weights_from"] == "onnx/model.onnx"
    assert entry["scales"] == f"onnx/{INT8_CACHE_SCALES_FILE}"
    assert entry["scales"] in manifest["files"]
    assert entry["value_rotation"] == f"onnx/{INT8_CACHE_ROTATION_FILE}"
    assert entry["value_rotation"] in manifest["files"]
    # calibrated on its own text, not the gate's
    assert entry["calibration"]["text"] == f"export/data/{CALIBRATION_TEXT.name}"
    assert entry["calibration"]["text"] != manifest["validation"]["text"]
    assert entry["calibration"]["tokens"] >= 512
    figures = entry["validation"]
    # the bar for the default model's gate, against the fp32 export
    assert figures["reference"] == manifest["validation"]["reference"]
    assert figures["tokens"] == manifest["validation"]["tokens"]
    assert figures["perplexity_ratio"] <= 1.01
    assert figures["top1_agreement"] >= 0.95
    # and against llama.cpp on the GGUF it came from: its recorded NLL per token on the same
    # ids (tests/export/record_llama_cpp.py), within 2 %
    recorded = json.loads((Path(__file__).parent / "data" / "llama_cpp" / "default_model.json")
                          .read_text(encoding="utf-8"))
    assert figures["tokens"] == len(recorded["tokens"])
    theirs = recorded["nll"] / recorded["predictions"]
    assert abs(np.log(figures["perplexity"]) / theirs - 1) <= 0.02
    if "nll_ratio" in figures:  # the export ran the live llama.cpp too
        assert abs(figures["nll_ratio"] - 1) <= 0.02


def test_the_int8_cache_graph_changes_only_the_attention(default_model: Path) -> None:
    cpu = onnx.load(str(default_model / "onnx" / "model.onnx"), load_external_data=False)
    twin_path = default_model / "onnx" / INT8_CACHE_FILE
    twin = onnx.load(str(twin_path), load_external_data=False)
    # around each attention node: its packed projections split and the values rotated
    # before it, each head of its output rotated back after it
    added = [n for n in twin.graph.node if n.name.startswith("int8kv.")]
    kept = [n for n in twin.graph.node if not n.name.startswith("int8kv.")]
    ops = [n.op_type for n in twin.graph.node]
    attention = [i for i, op in enumerate(ops) if op == "GroupQueryAttention"]
    assert len(attention) == 30 and len(added) == 5 * 30
    for i in attention:
        assert ops[i - 2:i + 4] == ["Split", "MatMul", "GroupQueryAttention", "Reshape",
                                    "MatMul", "Reshape"]
    assert [n.op_type for n in cpu.graph.node] == [n.op_type for n in kept]
    changed = [b for a, b in zip(cpu.graph.node, kept, strict=True)
               if a.SerializeToString() != b.SerializeToString()]
    assert {n.op_type for n in changed} == {"GroupQueryAttention"}
    assert len(changed) == 30
    for node in changed:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["k_quant_type"] == attrs["v_quant_type"] == b"PER_CHANNEL"
        assert attrs["kv_cache_bit_width"] == 8
        assert node.input[12].endswith(".k_scale") and node.input[13].endswith(".v_scale")
    for value in (*twin.graph.input, *twin.graph.output):
        cache = value.name.startswith(("past_key_values.", "present."))
        assert (value.type.tensor_type.elem_type == TensorProto.INT8) == cache
    # every weight of the CPU graph is read from the CPU graph's own file
    shared = stored_tensors(twin_path)
    big = [t for t in cpu.graph.initializer if len(t.raw_data) >= 4096]
    assert big and all(shared[t.name].location == "model.onnx" for t in big)
    assert twin_path.stat().st_size < 2_000_000


def test_the_scales_file_holds_the_graphs_scales(default_model: Path) -> None:
    """``[layers, 2, kv_heads * head_size]``: layer by layer, the key's then the value's, the
    very initializers the attention nodes read."""
    table = np.load(default_model / "onnx" / INT8_CACHE_SCALES_FILE, allow_pickle=False)
    assert table.dtype == np.float32 and table.shape == (30, 2, 192)
    graph = onnx.load(str(default_model / "onnx" / INT8_CACHE_FILE), load_external_data=False)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in graph.graph.initializer
              if t.name.startswith("int8kv.")}
    assert len(stored) == 60 + 5  # the scales, and the rotation's constants for all layers
    rotation = np.load(default_model / "onnx" / INT8_CACHE_ROTATION_FILE, allow_pickle=False)
    np.testing.assert_array_equal(rotation, value_rotation(64))
    np.testing.assert_array_equal(stored["int8kv.output_rotation.9x3x64"], rotation.T)
    np.testing.assert_array_equal(stored["int8kv.value_rotation.9x3x64"],
                                  np.kron(np.eye(3, dtype=np.float32), rotation))
    for layer in range(30):
        np.testing.assert_array_equal(table[layer, 0], stored[f"int8kv.{layer}.k_scale"])
        np.testing.assert_array_equal(table[layer, 1], stored[f"int8kv.{layer}.v_scale"])


def test_int8_attention_stores_the_fp32_cache_rounded_to_its_scales(tiny_copy: Path) -> None:
    cpu_graph = tiny_copy / "onnx" / "model.onnx"
    calibration = PROMPT + list(range(3, 120, 3))  # the prompt's values lie within the scales
    scales = cache_scales(cpu_graph, calibration)
    twin = write_int8_cache_graph(cpu_graph, calibration)
    table = np.load(twin.with_name(INT8_CACHE_SCALES_FILE), allow_pickle=False)
    for layer, pair in scales.items():
        np.testing.assert_array_equal(table[layer], np.stack(pair))
    want = prompt_cache(cpu_graph, PROMPT)
    got = prompt_cache(twin, PROMPT)
    rotation = np.load(twin.with_name(INT8_CACHE_ROTATION_FILE), allow_pickle=False)
    for layer, (key_scale, value_scale) in scales.items():
        for kind, scale in (("key", key_scale), ("value", value_scale)):
            fp32 = want[f"present.{layer}.{kind}"]
            if kind == "value":  # cached rotated, each head by the same matrix
                fp32 = fp32 @ rotation
            codes = got[f"present.{layer}.{kind}"]
            assert codes.dtype == np.int8
            step = scale.reshape(1, fp32.shape[1], 1, fp32.shape[3])
            expected = np.clip(np.rint(fp32 / step), -128, 127)
            if layer == 0:  # same inputs: the very codes (a tie may round either way)
                assert np.abs(codes - expected).max() <= 1
            else:  # later layers see attention over the rounded cache: a few steps off
                assert np.abs(codes * step - fp32).max() <= 4 * step.max()
    # the prompt's prediction survives the rounding
    assert got["logits"].argmax() == want["logits"].argmax()
    assert np.abs(got["logits"] - want["logits"]).max() < 0.5


def test_a_graph_that_fails_the_gate_is_not_kept(tiny_copy: Path) -> None:
    cpu_graph = tiny_copy / "onnx" / "model.onnx"
    twin = tiny_copy / "onnx" / INT8_CACHE_FILE
    tokenizer = Tokenizer.from_file(str(tiny_copy / "tokenizer.json"))
    impossible = ValidationGate(min_top1_agreement=1.01)  # no graph agrees more than always

    def gate_of(model: Path):
        return validate(cpu_graph, model, PROMPT * 3, 128, impossible)

    entry = int8_cache_entry(cpu_graph, tokenizer, gate_of, 128)
    assert set(entry) == {"reason"}
    assert entry["reason"].startswith("it fails the quality gate (")
    assert not any(twin.with_name(name).exists() for name in (
        INT8_CACHE_FILE, INT8_CACHE_SCALES_FILE, INT8_CACHE_ROTATION_FILE))


def test_scales_must_cover_every_attention_node(default_model: Path) -> None:
    model = onnx.load(str(default_model / "onnx" / "model.onnx"), load_external_data=False)
    scales = {layer: (np.ones(192, np.float32), np.ones(192, np.float32)) for layer in range(30)}
    with pytest.raises(ValueError, match="no calibrated scales for layer 29"):
        int8_cache_model(model, {k: v for k, v in scales.items() if k != 29})
    with pytest.raises(ValueError, match="attention for 30 of 31 layers"):
        int8_cache_model(model, {**scales, 30: scales[0]})
    twin = int8_cache_model(model, scales)
    with pytest.raises(ValueError, match="already quantizes its cache"):
        int8_cache_model(twin, scales)


def test_a_graph_onnx_runtime_cannot_run_is_not_kept(
    tiny_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scales of the wrong length: ONNX Runtime refuses to run the attention, and the export
    records why instead of failing."""
    import export.int8_cache as int8_cache

    cpu_graph = tiny_copy / "onnx" / "model.onnx"
    twin = tiny_copy / "onnx" / INT8_CACHE_FILE
    calibrated = cache_scales(cpu_graph, PROMPT)
    monkeypatch.setattr(int8_cache, "cache_scales", lambda graph, ids: {
        layer: (k[:3], v[:3]) for layer, (k, v) in calibrated.items()})
    tokenizer = Tokenizer.from_file(str(tiny_copy / "tokenizer.json"))
    entry = int8_cache_entry(cpu_graph, tokenizer,
                             lambda model: validate(cpu_graph, model, PROMPT * 3, 128,
                                                    ValidationGate()), 128)
    assert set(entry) == {"reason"}
    assert entry["reason"].startswith("ONNX Runtime cannot run its int8 attention (")
    assert not any(twin.with_name(name).exists() for name in (
        INT8_CACHE_FILE, INT8_CACHE_SCALES_FILE, INT8_CACHE_ROTATION_FILE))


@pytest.mark.parametrize("head_size", [64, 128, 96, 80, 256])
def test_the_value_rotation_is_orthogonal_and_its_own_inverse(head_size: int) -> None:
    """Any head size: the largest power-of-two Hadamard block that divides it, repeated."""
    rotation = value_rotation(head_size)
    assert rotation.shape == (head_size, head_size) and rotation.dtype == np.float32
    np.testing.assert_allclose(rotation @ rotation, np.eye(head_size), atol=1e-6)
    np.testing.assert_array_equal(rotation, rotation.T)
    block = head_size & -head_size
    # every entry of a block is ±1/√block: each channel is spread over the whole block
    np.testing.assert_allclose(np.abs(rotation[:block, :block]), 1 / np.sqrt(block),
                               rtol=1e-6)


def test_rotated_values_round_a_standout_channel_finer() -> None:
    """Why values are rotated: with fixed per-channel scales set by calibration values, a
    later value that stands out in one channel is clipped there; rotated, it is spread over
    the head and kept."""
    rng = np.random.default_rng(0)
    calibration = rng.normal(size=(1000, 64)).astype(np.float32)
    later = rng.normal(size=(200, 64)).astype(np.float32)
    later[:, 5] *= 8  # a channel that calibration never saw this large
    errors = []
    for rotation in (np.eye(64, dtype=np.float32), value_rotation(64)):
        scale = np.abs(calibration @ rotation).max(axis=0) / 127
        codes = np.clip(np.rint(later @ rotation / scale), -128, 127)
        errors.append(np.linalg.norm(codes * scale @ rotation.T - later))
    assert errors[1] < errors[0] / 2
