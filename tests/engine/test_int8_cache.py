"""``--kv-cache int8``: the engine on the default model's int8-cache CPU graph, and every way
of asking for it that cannot work refused in one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from model_copies import INT8_ROTATION, INT8_SCALES, without_int8_graph, without_int8_scales

import desktop.engine.model as model_module
import desktop.engine.runtime as runtime
from desktop.engine import ChatEngine, SamplingSettings, load_model
from desktop.engine.manifest import read_manifest
from desktop.engine.model import INT8_CACHE_ON_CPU
from desktop.engine.runtime import Int8CacheDecoder, SharedKVDecoder
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


@pytest.fixture
def fp32_model(default_model):
    return load_model(default_model, device="cpu", threads=2)


def test_long_prompts_are_read_by_the_fp32_graph_and_rounded_like_the_kernel(
    int8_model, fp32_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty cache a long prompt gets the fp32 graph's very logits, and the codes
    it leaves are the fp32 graph's keys and rotated values rounded the way the int8 kernel
    rounds its own: layer 0's, which both paths compute from the same inputs, are the
    kernel's codes (later layers differ by design: the kernel computes them after attending
    over rounded keys, the fp32 graph over exact ones)."""
    monkeypatch.setattr(runtime, "INT8_PROMPT_PAIRS", 0)  # every prompt counts as long
    ids = int8_model.encode(FORCED_TEXT)
    decoder = int8_model.decoder
    kernel = SharedKVDecoder(decoder.session, "cpu", 1024)  # the int8 graph on its own
    decoder.reset()
    fp32_model.decoder.reset()
    np.testing.assert_array_equal(decoder.forward(ids), fp32_model.decoder.forward(ids))
    kernel.forward(ids)
    n = len(ids)
    scales = np.load(int8_model.manifest.folder / INT8_SCALES).reshape(60, 1, 3, 1, 64)
    rotation = np.load(int8_model.manifest.folder / INT8_ROTATION)
    for index, (ours, theirs) in enumerate(zip(decoder._hosts, kernel._hosts, strict=True)):
        ours = ours[:, :, :n]
        if index == 0:  # layer 0's key
            np.testing.assert_array_equal(ours, theirs[:, :, :n])
        if index == 1:  # its value, rotated here by numpy and there by ONNX Runtime: the
            # products may differ in their last bit, which moves a code that lies on a tie
            apart = ours.astype(np.int16) - theirs[:, :, :n]
            assert np.abs(apart).max() <= 1 and np.count_nonzero(apart) <= ours.size // 1000
        # the fp32 graph's keys and rotated values times the inverse scale, rounded, clipped
        fp32 = fp32_model.decoder._hosts[index][:, :, :n]
        if index % 2:
            fp32 = fp32 @ rotation
        rounded = np.clip(np.rint(fp32 * (np.float32(1) / scales[index])), -128, 127)
        np.testing.assert_array_equal(ours, rounded)


def test_it_reads_later_long_prompts_over_the_int8_cache(
    int8_model, fp32_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation read in chunks, each through the fp32 graph over the cache so far
    (restored from its codes), predicts like the fp32 cache read the same way."""
    monkeypatch.setattr(runtime, "INT8_PROMPT_PAIRS", 0)
    ids = int8_model.encode(FORCED_TEXT * 2)
    picks = []
    for decoder in (fp32_model.decoder, int8_model.decoder):
        decoder.reset()
        picks.append([int(decoder.forward(ids[start:start + 24]).argmax())
                      for start in range(0, len(ids), 24)])
    assert int8_model.decoder.length == len(ids)
    assert np.mean(np.array(picks[0]) == np.array(picks[1])) >= 0.9


def test_only_long_prompts_open_the_fp32_graph(int8_model, monkeypatch) -> None:
    """Decode steps and short prompts run the int8 graph; a prompt whose tokens x (cached +
    tokens) reach the bound opens the fp32 graph, once per prompt."""
    monkeypatch.setattr(runtime, "INT8_PROMPT_PAIRS", 100 * 100)  # 100 tokens into nothing
    opened = []
    fp32_graph = int8_model.manifest.folder / int8_model.manifest.graphs["cpu"]

    def open_fp32():
        opened.append(1)
        return runtime.create_session(fp32_graph, "cpu", 2)[0]

    scales = np.load(int8_model.manifest.folder / INT8_SCALES)
    rotation = np.load(int8_model.manifest.folder / INT8_ROTATION)
    decoder = Int8CacheDecoder(int8_model.decoder.session, open_fp32, scales, 2048, rotation)
    ids = int8_model.encode(FORCED_TEXT * 2)
    decoder.forward(ids[:99])  # 99 x 99 < 10,000
    decoder.forward(ids[99:100])
    decoder.forward(ids[100:161])  # 61 x 161 < 10,000
    assert opened == [] and decoder.length == 161
    decoder.reset()
    decoder.forward(ids[:100])
    assert opened == [1]
    decoder.forward(ids[100:162])  # 62 x 162 >= 10,000
    assert opened == [1, 1] and decoder.length == 162


def test_scales_that_do_not_fit_the_graph_are_refused(int8_model) -> None:
    session = int8_model.decoder.session
    with pytest.raises(ModelError, match=r"^the int8 cache's scales are float32\[30, 2, 191\], "
                                         r"not positive float32\[30, 2, 192\]; re-export"):
        Int8CacheDecoder(session, lambda: session, np.ones((30, 2, 191), np.float32), 512)
    with pytest.raises(ModelError, match="not positive"):
        Int8CacheDecoder(session, lambda: session, np.zeros((30, 2, 192), np.float32), 512)
    scales = np.ones((30, 2, 192), np.float32)
    for rotation in (np.eye(63, dtype=np.float32), 2 * np.eye(64, dtype=np.float32),
                     np.eye(64)):
        with pytest.raises(ModelError, match=r"^the int8 cache's value rotation is float.*, "
                                             r"not an orthogonal float32\[64, 64\]; "
                                             r"re-export the model$"):
            Int8CacheDecoder(session, lambda: session, scales, 512, rotation)


@pytest.mark.parametrize("name", [INT8_SCALES, INT8_ROTATION], ids=["scales", "rotation"])
def test_a_scales_or_rotation_file_that_is_not_an_array_is_one_line(default_model, tmp_path,
                                                                     name) -> None:
    folder = tmp_path / default_model.name
    shutil.copytree(default_model, folder)
    for content in (b"not numpy", b""):  # a foreign file, a truncated one
        (folder / name).write_bytes(content)
        with pytest.raises(ModelError, match=rf"^{re.escape(str(folder / name))} cannot "
                                             r"be read \(.*\); re-export the model$"):
            load_model(folder, kv_cache="int8")
    (folder / name).unlink()
    with pytest.raises(ModelError, match=rf"{re.escape(name)} is missing; re-export"):
        load_model(folder, kv_cache="int8")


@pytest.mark.parametrize(("copy", "reason"), [
    (without_int8_graph, "it was exported before OnnxChat made one; export it again"),
    (without_int8_scales, "it was exported before OnnxChat kept its cache scales; export it "
                          "again"),
], ids=["no graph", "no scales"])
def test_a_folder_exported_before_it_is_refused(default_model, tmp_path, copy, reason) -> None:
    folder = copy(default_model, tmp_path / default_model.name)
    with pytest.raises(ModelError) as error:
        load_model(folder, kv_cache="int8")
    assert str(error.value) == (
        f"{folder} has no int8 KV cache graph ({reason}); use --kv-cache fp32")
    assert load_model(folder, device="cpu").graph == "onnx/model.onnx"


def test_a_folder_whose_export_did_not_keep_it_says_why(default_model, tmp_path) -> None:
    folder = without_int8_graph(default_model, tmp_path / default_model.name,
                                {"reason": "it fails the quality gate (top-1 0.90)"})
    with pytest.raises(ModelError, match=r"the export did not keep one: it fails the quality "
                                         r"gate \(top-1 0\.90\)\); use --kv-cache fp32$"):
        load_model(folder, kv_cache="int8")


def test_a_manifest_already_read_is_not_read_again(default_model, monkeypatch) -> None:
    """The window reads the manifest to choose the cache, then loads from what it read."""
    manifest = read_manifest(default_model)

    def read_again(folder):
        raise AssertionError(f"manifest.json of {folder} read a second time")

    monkeypatch.setattr(model_module, "read_manifest", read_again)
    model = load_model(manifest, device="cpu", threads=2, kv_cache="int8")
    assert model.graph == f"onnx/{INT8_CACHE_FILE}"


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
