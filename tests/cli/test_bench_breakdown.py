"""``onnxchat bench --breakdown`` takes the default model's step apart: every node of the
shipped graph is in one part or the rest, and each part runs (figures are never asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from model_copies import without_int8_graph

from desktop.bench_breakdown import (
    CORRECTION_MARK,
    FOLDED,
    FOLDED_SPARE_ROW,
    READING,
    REQUANTIZED,
    REQUANTIZED_HEAD,
    _dequantized,
    requantize_8bit,
    requantize_offsets,
)
from desktop.cpuinfo import cpu_isa
from desktop.engine import folding


def onnxchat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                          text=True, timeout=600, check=False)


def _attribute(node: onnx.NodeProto, name: str) -> int:
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def test_breakdown_accounts_for_every_node_of_the_default_models_step(default_model):
    result = onnxchat("bench", "--breakdown", "--model", str(default_model), "--runs", "1",
                      "--prompt-tokens", "16", "--new-tokens", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["part"]: row for row in report["rows"]}
    graph = onnx.load(str(default_model / "onnx" / "model.onnx"), load_external_data=False).graph
    ops = Counter(node.op_type for node in graph.node)
    corrections = sum(CORRECTION_MARK in node.name for node in graph.node)
    assert corrections > 0  # the default model's Q4_1 blocks carry offsets
    assert rows["whole step"]["nodes"] == len(graph.node)
    assert rows["projections alone"]["nodes"] == ops["MatMulNBits"]
    assert rows["attention alone (GroupQueryAttention)"]["nodes"] == ops["GroupQueryAttention"]
    assert rows["block-sum correction alone"]["nodes"] == corrections
    # beside the parts, the time to read as many bytes as the engine's step reads: its
    # weights as ONNX Runtime packs them (a block of 32 weights: 4-bit codes and a float
    # scale and block term, 24 bytes; 8-bit, 40 bytes) and the cache after 16 + 2 / 2 tokens
    assert rows[READING]["nodes"] == 0 and rows[READING]["ms"] > 0
    nbits = [n for n in graph.node if n.op_type == "MatMulNBits"]
    weights = sum(_attribute(n, "K") * _attribute(n, "N") // 32
                  * (24 if _attribute(n, "bits") == 4 else 40) for n in nbits)
    if not report["unfolded"]:
        assert report["reading_mb"]["weights"] == round(weights / 1e6, 1)
    assert report["reading_mb"]["cache"] == round(30 * 2 * 3 * 64 * 17 * 4 / 1e6, 1)
    rest = rows["the rest (norms, activations, scheduling)"]["nodes"]
    assert rest == (len(graph.node) - ops["MatMulNBits"] - ops["GroupQueryAttention"]
                    - corrections)
    # the same step re-quantized without the offsets, then without the 8-bit LM head, and
    # the step the engine runs: the same weights, the offsets folded into the packed ones
    # (with a spare row where this CPU's 4-bit kernel does not read them in one-row products)
    assert rows[REQUANTIZED]["nodes"] == rows[REQUANTIZED_HEAD]["nodes"] == (
        len(graph.node) - corrections)
    layers = ops["GroupQueryAttention"]
    if folding.one_row_reads_block_terms(cpu_isa()):
        assert rows[FOLDED]["nodes"] == len(graph.node) - corrections
    else:
        assert FOLDED not in rows
        assert rows[FOLDED_SPARE_ROW]["nodes"] == len(graph.node) - corrections + 1 + 2 * layers
    assert report["unfolded"] is None
    assert all(row["ms"] > 0 for name, row in rows.items() if not name.startswith("the rest"))
    assert report["context"] == 16 and report["steps"] == 2 and report["threads"] == 2

    table = onnxchat("bench", "--breakdown", "--model", str(default_model), "--runs", "1",
                     "--prompt-tokens", "8", "--new-tokens", "1")
    assert table.returncode == 0, table.stderr
    assert "Where a decode step's time goes" in table.stdout
    assert "block-sum correction alone" in table.stdout
    assert REQUANTIZED in table.stdout


def test_breakdown_of_a_graph_whose_weights_are_in_a_data_file(default_model, tmp_path):
    """Large exports keep their weights in ``model.onnx_data``: the parts get theirs in data
    files of their own in a temporary folder, and nothing is written into the model's."""
    folder = tmp_path / "external"
    shutil.copytree(default_model, folder, ignore=shutil.ignore_patterns("*.onnx"))
    model = onnx.load(str(default_model / "onnx" / "model.onnx"))
    onnx.save_model(model, str(folder / "onnx" / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx_data",
                    size_threshold=65536)
    before = sorted(p.name for p in (folder / "onnx").iterdir())
    assert "model.onnx_data" in before
    result = onnxchat("bench", "--breakdown", "--model", str(folder), "--runs", "1",
                      "--prompt-tokens", "8", "--new-tokens", "1", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["part"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["projections alone"]["ms"] > 0
    assert rows["block-sum correction alone"]["ms"] > 0
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == before


@pytest.fixture(scope="module")
def tiny_llama_fp32_fused_model(tiny_llama_varied_hf):
    from tiny_models import cached, export_key, export_tiny

    return cached("tiny-llama-fp32-fused", export_key(),
                  export_tiny(tiny_llama_varied_hf, "fp32-fused", force=True)) / "model"


@pytest.mark.parametrize(("fixture", "projection_op"), [
    ("tiny_llama_fused_model", "MatMulNBits"),  # int8-fused: symmetric 8-bit blocks
    ("tiny_llama_fp32_fused_model", "MatMul"),  # fp32-fused: dense weights
])
def test_breakdown_of_a_model_without_block_offsets(request, fixture, projection_op):
    """Without blocks that carry offsets there is no correction, and no row for it; an fp32
    graph's projections are its MatMul nodes."""
    folder = request.getfixturevalue(fixture)
    result = onnxchat("bench", "--breakdown", "--model", str(folder), "--runs", "1",
                      "--prompt-tokens", "8", "--new-tokens", "2", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["part"]: row for row in json.loads(result.stdout)["rows"]}
    assert set(rows) == {"whole step", "projections alone",
                         "attention alone (GroupQueryAttention)",
                         "the rest (norms, activations, scheduling)", READING}
    graph = onnx.load(str(folder / "onnx" / "model.onnx")).graph
    ops = Counter(node.op_type for node in graph.node)
    assert rows["projections alone"]["nodes"] == ops[projection_op] > 0
    assert rows["projections alone"]["ms"] > 0


def test_breakdown_refuses_what_it_cannot_take_apart(default_model, tiny_gpt2_model):
    result = onnxchat("bench", "--breakdown", "--model", str(tiny_gpt2_model))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("onnxchat: error: ") and "is not a fused export" in line
    assert "\n" not in line
    result = onnxchat("bench", "--breakdown", "--model", str(default_model),
                      "--prompt-tokens", "9000")
    assert result.returncode == 2
    assert result.stderr.strip() == ("onnxchat: error: --prompt-tokens + --new-tokens exceed "
                                     "the model's context (8192)")
    result = onnxchat("bench", "--breakdown", "--model", str(default_model), "--runs", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == ("onnxchat: error: --prompt-tokens, --new-tokens and --runs "
                                     "must be at least 1")
    result = onnxchat("bench", "--breakdown", "--model", str(default_model), "--device", "cuda")
    assert result.returncode == 2
    assert result.stderr.strip() == ("onnxchat: error: --breakdown measures the CPU graph; "
                                     "leave out --device cuda")
    code = ("import sys; sys.modules['onnx'] = None; from desktop.cli import main; "
            f"raise SystemExit(main(['bench', '--breakdown', '--model', {str(default_model)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("onnxchat: error: --breakdown takes the graph apart with "
                                     "the onnx package: pip install 'onnxchat[export]'")


def test_breakdown_of_the_int8_cache_graph(default_model, tmp_path):
    result = onnxchat("bench", "--breakdown", "--kv-cache", "int8", "--model",
                      str(default_model), "--runs", "1", "--prompt-tokens", "16",
                      "--new-tokens", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["graph"] == "onnx/model_int8kv.onnx"
    rows = {row["part"]: row for row in report["rows"]}
    assert rows["attention alone (GroupQueryAttention)"]["nodes"] == 30
    assert rows["attention alone (GroupQueryAttention)"]["ms"] > 0

    folder = without_int8_graph(default_model, tmp_path / "older")
    refused = onnxchat("bench", "--breakdown", "--kv-cache", "int8", "--model", str(folder))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"onnxchat: error: {folder} has no int8 KV cache graph (it was exported before "
        "OnnxChat made one; export it again); use --kv-cache fp32")


def _nll(session_path: Path, ids: list[int]) -> float:
    """Mean negative log-likelihood of ``ids`` through a fused graph, token by token."""
    from desktop.engine.runtime import SharedKVDecoder, create_session
    from export.llama_cpp_reference import window_nll

    decoder = SharedKVDecoder(create_session(session_path, "cpu", threads=2)[0], "cpu", 512)
    logits = np.stack([decoder.forward([token]).reshape(-1).copy() for token in ids])
    return window_nll(logits, ids) / (len(ids) - 1)


def test_the_requantized_step_is_the_source_s_weights_rounded_to_symmetric_4_bit(
        default_model, tmp_path):
    """The comparison step's weights are the GGUF's own (llama.cpp's gguf-py dequantizes the
    same tensor to the same floats once the graph's offsets are added) rounded to symmetric
    4-bit blocks: every weight within half a step of its source, no correction left, and a
    model that still reads English (its perplexity changed, but less than threefold: an
    offset lost or misplaced sends it into the millions)."""
    import gguf
    from onnx import numpy_helper
    from tokenizers import Tokenizer

    from desktop.bench import default_gguf

    path = default_model / "onnx" / "model.onnx"
    model = onnx.load(str(path))
    constants = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    down = nodes["model.layers.0.mlp.down_proj/MatMulNBits"]
    offsets = numpy_helper.to_array(
        constants[nodes["model.layers.0.mlp.down_proj/offset/MatMul"].input[1]])
    exact = _dequantized(down, constants) + np.repeat(offsets.T, 32, axis=1)
    source = next(t for t in gguf.GGUFReader(str(default_gguf())).tensors
                  if t.name == "blk.0.ffn_down.weight")
    assert source.tensor_type == gguf.GGMLQuantizationType.Q4_1
    theirs = gguf.quants.dequantize(np.asarray(source.data), source.tensor_type)
    assert theirs.shape == exact.shape == (576, 1536)
    np.testing.assert_allclose(exact, theirs, rtol=0, atol=1e-6 * np.abs(theirs).max())

    assert requantize_offsets(model)
    requantize_8bit(model)
    assert not any(CORRECTION_MARK in n.name for n in model.graph.node)
    projections = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert len(projections) == 121
    constants = {t.name: t for t in model.graph.initializer}
    for node in projections:
        bits = next(a.i for a in node.attribute if a.name == "bits")
        assert bits == 4 and len(node.input) == 3
    # the rounding the export applies to float weights (export.builders.weights; the app
    # does not import the export package, so the breakdown writes the same rule again)
    from export.builders.weights import DenseLinear, quantize_symmetric

    theirs_rounded = quantize_symmetric(DenseLinear(exact.T.copy()), bits=4, block_size=32)
    assert numpy_helper.to_array(constants[down.input[1]]).tobytes() == (
        theirs_rounded.packed.tobytes())
    np.testing.assert_array_equal(numpy_helper.to_array(constants[down.input[2]]),
                                  theirs_rounded.scales.reshape(-1))
    rounded = _dequantized(next(n for n in projections if n.name == down.name), constants)
    step = np.abs(theirs).reshape(576, 48, 32).max(axis=-1, keepdims=True) / 7
    assert np.all(np.abs(rounded.reshape(576, 48, 32) - theirs.reshape(576, 48, 32))
                  <= step / 2 + 1e-6)
    assert requantize_offsets(model) is False  # nothing left to re-quantize

    folder = tmp_path / "onnx"
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))
    tokenizer = Tokenizer.from_file(str(default_model / "tokenizer.json"))
    text = ("The river runs through the old town, past the market and the church, and on "
            "into the hills where the farms begin. In summer the children swim in it; in "
            "winter it freezes, and the whole town comes out to skate.")
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    shipped, rounded_nll = _nll(path, ids), _nll(folder / "model.onnx", ids)
    assert abs(rounded_nll - shipped) > 1e-3 and rounded_nll < shipped + np.log(3)
