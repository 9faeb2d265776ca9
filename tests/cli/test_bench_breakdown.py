"""``onnxchat bench --breakdown`` takes the default model's step apart: every node of the
shipped graph is in one part or the rest, the parts run, and the step without the block-sum
correction really lacks it (figures are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import onnx

from desktop.bench_breakdown import CORRECTION_MARK, correction_part, without_correction
from desktop.engine.runtime import SharedKVDecoder, create_session


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
    assert rows["projections alone (MatMulNBits)"]["nodes"] == ops["MatMulNBits"]
    assert rows["attention alone (GroupQueryAttention)"]["nodes"] == ops["GroupQueryAttention"]
    assert rows["block-sum correction alone"]["nodes"] == corrections
    assert rows["whole step without the correction"]["nodes"] == len(graph.node) - corrections
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


def test_the_step_without_the_correction_lacks_only_the_correction(default_model):
    """Its logits differ from the shipped graph's (the correction mattered) and it is the
    shipped graph less exactly the correction's nodes."""
    source = onnx.load(str(default_model / "onnx" / "model.onnx"))
    stripped = onnx.load_from_string(without_correction(source))
    part = correction_part(source)
    assert part is not None
    assert len(stripped.graph.node) == len(source.graph.node) - part[2]
    assert not any(CORRECTION_MARK in node.name for node in stripped.graph.node)
    logits = []
    for model in (source.SerializeToString(), stripped.SerializeToString()):
        session, _ = create_session(model, "cpu", 1)
        logits.append(SharedKVDecoder(session, "cpu", 64).forward([1, 2, 3, 4]))
    assert np.abs(logits[0] - logits[1]).max() > 0.1


def test_breakdown_refuses_what_it_cannot_take_apart(default_model, tiny_gpt2_model):
    result = onnxchat("bench", "--breakdown", "--model", str(tiny_gpt2_model))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("onnxchat: error: ") and "is not a fused export" in line
    assert "\n" not in line
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
