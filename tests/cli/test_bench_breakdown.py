"""``onnxchat bench --breakdown`` takes the default model's step apart: every node of the
shipped graph is in one part or the rest, and each part runs (figures are never asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import onnx
import pytest
from model_copies import without_int8_graph

from desktop.bench_breakdown import CORRECTION_MARK


def onnxchat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                          text=True, timeout=600, check=False)


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
    rest = rows["the rest (norms, activations, scheduling)"]["nodes"]
    assert rest == (len(graph.node) - ops["MatMulNBits"] - ops["GroupQueryAttention"]
                    - corrections)
    assert all(row["ms"] > 0 for name, row in rows.items() if not name.startswith("the rest"))
    assert report["context"] == 16 and report["steps"] == 2 and report["threads"] == 2

    table = onnxchat("bench", "--breakdown", "--model", str(default_model), "--runs", "1",
                     "--prompt-tokens", "8", "--new-tokens", "1")
    assert table.returncode == 0, table.stderr
    assert "Where a decode step's time goes" in table.stdout
    assert "block-sum correction alone" in table.stdout


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
                         "the rest (norms, activations, scheduling)"}
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
