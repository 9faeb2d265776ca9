"""``--kv-cache int8``: the engine on the default model's int8-cache CPU graph, and every way
of asking for it that cannot work refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from model_copies import without_int8_graph

from desktop.engine import ChatEngine, SamplingSettings, load_model
from desktop.engine.model import INT8_CACHE_ON_CPU
from desktop.engine.runtime import SharedKVDecoder
from desktop.errors import ModelError
from export.onnx_files import INT8_CACHE_FILE

GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=16)
FORCED_TEXT = (
    "Bread is one of the oldest prepared foods. Flour and water are mixed into a dough, "
    "which is left to rise when yeast is added, then shaped and baked. Flatbreads need no "
    "rising at all and are cooked quickly on hot stones or in a pan. Over the centuries "
    "bakers learned to keep a piece of each day's dough to start the next batch, and many "
    "towns still take pride in a loaf that cannot be found anywhere else. In the kitchen, "
    "the oven should be hot before the loaf goes in, and the crust should sound hollow when "
    "tapped underneath.")


@pytest.fixture(scope="module")
def int8_model(default_model):
    return load_model(default_model, device="auto", threads=2, kv_cache="int8")


def test_the_int8_cache_graph_runs_on_the_cpu_and_says_so(int8_model) -> None:
    assert int8_model.graph == f"onnx/{INT8_CACHE_FILE}"
    # a graph by cache, not by device: `graphs` maps devices only
    assert int8_model.manifest.graphs == {"cpu": "onnx/model.onnx",
                                          "cuda": "onnx/model_cuda.onnx"}
    assert int8_model.manifest.int8_cache == (f"onnx/{INT8_CACHE_FILE}", "")
    assert int8_model.device.used == "cpu"
    assert int8_model.device.reason == INT8_CACHE_ON_CPU
    assert int8_model.decoder.kv_dtype == np.int8
    stream = ChatEngine(int8_model).reply(
        [{"role": "user", "content": "What is the capital of France?"}], GREEDY)
    assert "".join(stream).strip() == stream.text.strip() != ""
    assert stream.stats.new_tokens > 0


def test_it_predicts_like_the_fp32_cache(default_model, int8_model) -> None:
    """Teacher-forced over a text: the same next token nearly everywhere (the export's gate
    measures it over 955 tokens; models/README.md)."""
    ids = int8_model.encode(FORCED_TEXT)
    fp32 = load_model(default_model, device="cpu", threads=2).decoder
    picks = []
    for decoder in (fp32, int8_model.decoder):
        decoder.reset()
        picks.append([int(decoder.forward([token]).argmax()) for token in ids])
    agree = np.mean(np.array(picks[0]) == np.array(picks[1]))
    assert agree >= 0.9


def test_growing_the_buffers_keeps_the_int8_cache(int8_model) -> None:
    """The buffers start at 512 positions and double; the int8 codes move over exactly."""
    session = int8_model.decoder.session
    small = SharedKVDecoder(session, "cpu", 2048, initial_capacity=64)
    large = SharedKVDecoder(session, "cpu", 2048, initial_capacity=1024)
    ids = [int(i) for i in np.random.default_rng(3).integers(100, 40000, 700)]
    small.forward(ids[:40])
    for token in ids[40:100]:  # grows 64 -> 128 one step at a time
        small.forward([token])
    small.forward(ids[100:])  # 128 -> 700
    assert small.capacity >= 700
    large.forward(ids[:40])
    for token in ids[40:100]:
        large.forward([token])
    large.forward(ids[100:])
    np.testing.assert_array_equal(small.forward([42]), large.forward([42]))


def test_a_folder_exported_before_it_is_refused(default_model, tmp_path) -> None:
    folder = without_int8_graph(default_model, tmp_path / default_model.name)
    with pytest.raises(ModelError) as error:
        load_model(folder, kv_cache="int8")
    assert str(error.value) == (
        f"{folder} has no int8 KV cache graph (it was exported before OnnxChat made one; "
        "export it again); use --kv-cache fp32")
    assert load_model(folder, device="cpu").graph == "onnx/model.onnx"


def test_a_folder_whose_export_did_not_keep_it_says_why(default_model, tmp_path) -> None:
    folder = without_int8_graph(default_model, tmp_path / default_model.name,
                                {"reason": "it fails the quality gate (top-1 0.90)"})
    with pytest.raises(ModelError, match=r"the export did not keep one: it fails the quality "
                                         r"gate \(top-1 0\.90\)\); use --kv-cache fp32$"):
        load_model(folder, kv_cache="int8")


def test_cuda_and_unknown_caches_are_refused(default_model) -> None:
    with pytest.raises(ModelError, match=r"^the int8 KV cache runs on the CPU; use --device"):
        load_model(default_model, device="cuda", kv_cache="int8")
    with pytest.raises(ModelError, match=r"^KV cache 'fp8' is unknown; use one of: fp32, int8$"):
        load_model(default_model, kv_cache="fp8")


def test_the_command_line_refusal_is_one_line(default_model) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--model", str(default_model),
         "--kv-cache", "int8", "--device", "cuda", "--prompt", "Hi", "--no-history"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "onnxchat: error: the int8 KV cache runs on the CPU; use --device auto or --device "
        "cpu, or --kv-cache fp32 to run on CUDA"]


def test_the_terminal_chat_runs_with_the_int8_cache(default_model, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--data-dir", str(tmp_path), "--model",
         str(default_model), "--kv-cache", "int8", "--temperature", "0", "--max-new-tokens",
         "8", "--prompt", "Say hello", "--stats", "--no-history"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert json.loads(done.stderr.strip().splitlines()[-1])["new_tokens"] > 0
