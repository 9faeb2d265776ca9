"""Broken model folders are refused at load with one line naming the file and the problem."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from desktop.engine import load_model
from desktop.errors import ModelError

SMALL_FILES = ["manifest.json", "tokenizer.json", "chat_template.jinja", "config.json",
               "generation_config.json"]


@pytest.fixture
def broken(tmp_path: Path, default_model: Path) -> Path:
    """A copy of the default model folder whose ONNX file is a link to the real one."""
    folder = tmp_path / "broken"
    (folder / "onnx").mkdir(parents=True)
    for name in SMALL_FILES:
        shutil.copy(default_model / name, folder / name)
    (folder / "onnx" / "model.onnx").symlink_to(default_model / "onnx" / "model.onnx")
    return folder


def replace_onnx(folder: Path, data: bytes) -> None:
    target = folder / "onnx" / "model.onnx"
    target.unlink()
    target.write_bytes(data)


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def refused(folder: Path) -> str:
    with pytest.raises(ModelError) as info:
        load_model(folder, device="cpu", threads=1)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_truncated_onnx(broken, default_model):
    replace_onnx(broken, (default_model / "onnx" / "model.onnx").read_bytes()[:1_000_000])
    message = refused(broken)
    assert "model.onnx" in message and "truncated or corrupt" in message


def test_zero_byte_onnx(broken):
    replace_onnx(broken, b"")
    assert "model.onnx is empty" in refused(broken)


def test_garbage_tokenizer(broken):
    (broken / "tokenizer.json").write_text("{not json at all")
    message = refused(broken)
    assert "tokenizer.json is not a valid tokenizer" in message


def test_missing_tokenizer(broken):
    (broken / "tokenizer.json").unlink()
    assert "tokenizer.json is missing" in refused(broken)


def test_manifest_from_a_newer_schema(broken):
    edit_manifest(broken, schema_version=99)
    assert "newer than this OnnxChat understands" in refused(broken)


def test_manifest_that_is_not_json(broken):
    (broken / "manifest.json").write_text("\x00\x01garbage")
    assert "manifest.json is not valid JSON" in refused(broken)


def test_no_manifest_at_all(broken):
    (broken / "manifest.json").unlink()
    assert "has no manifest.json" in refused(broken)


def _fake_decoder(path: Path, vocab: int, with_cache: bool) -> None:
    """A graph with a causal LM's names but a tiny vocabulary, or without any KV cache."""
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s", vocab])]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["logits"])]
    inits = [helper.make_tensor("table", TensorProto.FLOAT, [vocab, vocab],
                                [0.0] * (vocab * vocab))]
    if with_cache:
        inputs.append(helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                                    ["b", "t"]))
        nodes.append(helper.make_node("Identity", ["attention_mask"], ["mask_out"]))
        outputs.append(helper.make_tensor_value_info("mask_out", TensorProto.INT64, ["b", "t"]))
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.0.{kind}", TensorProto.FLOAT, ["b", 1, "p", 4]))
            outputs.append(helper.make_tensor_value_info(
                f"present.0.{kind}", TensorProto.FLOAT, ["b", 1, "t", 4]))
            nodes.append(helper.make_node("Identity", [f"past_key_values.0.{kind}"],
                                          [f"present.0.{kind}"]))
    graph = helper.make_graph(nodes, "fake", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_onnx_that_is_not_a_causal_lm_with_kv_cache(broken):
    (broken / "onnx" / "model.onnx").unlink()
    _fake_decoder(broken / "onnx" / "model.onnx", vocab=10, with_cache=False)
    assert "not a causal language model with a KV cache" in refused(broken)


def test_vocabulary_that_disagrees_with_the_tokenizer(broken):
    (broken / "onnx" / "model.onnx").unlink()
    _fake_decoder(broken / "onnx" / "model.onnx", vocab=10, with_cache=True)
    message = refused(broken)
    assert "tokenizer.json has 49152 tokens but the ONNX model predicts only 10" in message


def test_models_verify_detects_a_changed_file(tmp_path, default_model):
    models = tmp_path / "models"
    folder = models / "copy"
    shutil.copytree(default_model, folder, ignore=shutil.ignore_patterns("onnx"))
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").symlink_to(default_model / "onnx" / "model.onnx")
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    env = {"ONNXCHAT_MODELS_DIR": str(models), "PATH": "/usr/bin:/bin",
           "ONNXCHAT_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "desktop", "models", "--verify"],
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1
    assert "config.json: size" in result.stdout or "config.json: sha256" in result.stdout
    assert "Traceback" not in result.stderr


def test_cli_reports_a_broken_model_in_one_line(broken):
    replace_onnx(broken, b"garbage" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--model", str(broken), "--prompt", "hi",
         "--device", "cpu"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("onnxchat: error:")]
    assert len(lines) == 1 and "model.onnx" in lines[0]
    assert "Traceback" not in result.stderr
