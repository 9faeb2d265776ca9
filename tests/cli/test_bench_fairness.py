"""The benchmark's fairness machinery: the CPU's ISA, the comparator's build against it, a
comparator crash seen as such, the long-context and model-shape stages (figures are never
asserted, only that they are measured and reported)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.bench import comparator_build
from desktop.cpuinfo import CpuIsa, cpu_isa
from desktop.llama_worker import build_features

SPR_FLAGS = ("fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx_vnni avx512_bf16 "
             "amx_bf16 amx_tile amx_int8")
ZEN3_FLAGS = "fpu sse2 avx avx2 fma f16c"
NATIVE_INFO = ("CPU : SSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
               "AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | OPENMP = 1 |")
PORTABLE_INFO = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 |"


def cpuinfo_file(tmp_path: Path, flags: str, cores: int = 2) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text("".join(f"processor\t: {i}\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
                            for i in range(cores)), encoding="utf-8")
    return path


def test_the_isa_is_read_from_the_cpu_flags(tmp_path):
    isa = cpu_isa(cpuinfo_file(tmp_path, SPR_FLAGS))
    assert isa.model == "Test CPU" and isa.cores == 2
    assert isa.present() == {"AVX2", "AVX-512F", "AVX-512 VNNI", "AVX-VNNI", "AVX-512 BF16", "AMX"}
    zen3 = cpu_isa(cpuinfo_file(tmp_path, ZEN3_FLAGS, cores=16))
    assert zen3.present() == {"AVX2"}
    assert zen3.describe() == ("Test CPU, 16 cores: AVX2; no AVX-512F, AVX-512 VNNI, AVX-VNNI, "
                               "AVX-512 BF16, AMX")


def test_this_machine_reports_its_isa():
    isa = cpu_isa()
    assert isa.model and set(isa.features) >= {"AVX2", "AVX-512F", "AVX-512 VNNI", "AMX"}


def test_a_build_without_the_cpus_extensions_is_not_called_native(tmp_path):
    spr = cpu_isa(cpuinfo_file(tmp_path, SPR_FLAGS))
    assert build_features(NATIVE_INFO) == spr.present()
    native = comparator_build({"system_info": NATIVE_INFO, "version": "0.3"}, spr)
    assert native["native"] and native["missing_features"] == []
    portable = comparator_build({"system_info": PORTABLE_INFO, "version": "0.3"}, spr)
    assert not portable["native"]
    assert portable["missing_features"] == ["AMX", "AVX-512 BF16", "AVX-512 VNNI", "AVX-512F",
                                            "AVX-VNNI"]
    # On a CPU without AVX-512 the portable build is the native one.
    zen3 = CpuIsa("Zen 3", 2, {"AVX2": True, "AVX-512F": False, "AVX-512 VNNI": False,
                               "AVX-VNNI": False, "AVX-512 BF16": False, "AMX": False})
    assert comparator_build({"system_info": PORTABLE_INFO}, zen3)["native"]


@pytest.fixture(scope="module")
def tiny_shape(tmp_path_factory) -> Path:
    """The tiny random Llama as a GGUF file and a fused graph of the same blocks."""
    out = tmp_path_factory.mktemp("shape") / "tiny"
    result = subprocess.run([sys.executable, "-m", "export.synthetic", "--shape", "tiny",
                             "--out", str(out)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return out


def test_the_shape_pair_holds_the_same_weights(tiny_shape):
    """Both files of the pair compute the same function: llama.cpp's logits after a prompt
    follow the fused graph's (their activations are rounded differently, so not exactly).
    The prompt goes one token at a time: natively built llama.cpp dies on multi-token batches
    on some AMX CPUs, and the weights are what is checked here."""
    pytest.importorskip("llama_cpp")
    import numpy as np

    from desktop.bench_shape import ShapeModel
    from desktop.llama_worker import LlamaCppWorker

    ids = list(range(300, 332))
    mine = ShapeModel(tiny_shape, threads=1).decoder.forward(ids)
    worker = LlamaCppWorker(str(tiny_shape / "model.gguf"), 1, 512, prompt_batch=1)
    try:
        worker.prefill(ids)
        theirs = np.asarray(worker.logits())
    finally:
        worker.close()
    assert np.corrcoef(mine, theirs)[0, 1] > 0.99


@pytest.mark.parametrize("quant", ["q4_0", "q4_1"])
def test_the_shape_weights_are_centred_like_trained_ones(quant, tmp_path):
    """Random 4-bit codes over all sixteen values average −0.5 steps: that bias spread the
    1B model's attention scores until ONNX Runtime's softmax fell into subnormal floats,
    making its attention 2.5x slower than with centred weights. Its weights have mean 0 and
    std 1/sqrt(K), as a trained model's roughly do."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    from export.synthetic import SHAPES, write_gguf

    path = tmp_path / "tiny.gguf"
    write_gguf(SHAPES["tiny"], quant, path)
    matrices = [t for t in gguf.GGUFReader(str(path)).tensors if len(t.shape) == 2]
    assert len(matrices) == 1 + 7 * SHAPES["tiny"].num_layers
    for tensor in matrices:
        weights = dequantize(tensor.data, tensor.tensor_type)
        k = weights.shape[-1]
        assert abs(weights.mean()) < 0.02 * weights.std(), tensor.name
        assert weights.std() == pytest.approx(1 / np.sqrt(k), rel=0.15), tensor.name


def test_a_comparator_crash_is_reported_with_its_signal(tiny_shape):
    pytest.importorskip("llama_cpp")
    from desktop.llama_worker import ComparatorFailed, LlamaCppWorker

    worker = LlamaCppWorker(str(tiny_shape / "model.gguf"), 1, 512, prompt_batch=1)
    try:
        worker.run([300, 301, 302], 2)
        os.kill(worker.pid, signal.SIGSEGV)
        with pytest.raises(ComparatorFailed, match=r"crashed with SIGSEGV while running a "
                                                   r"3-token prompt"):
            worker.run([300, 301, 302], 2)
    finally:
        worker.close()


def test_a_build_that_dies_reading_prompts_is_measured_by_its_decode(tiny_shape, monkeypatch):
    """A child that dies on its first prompt (killed here as ggml's AMX kernel kills it on
    some CPUs) is reopened with prompts fed one token at a time: the same build, its decode
    measured, its prefill not, and the crash kept for the report."""
    pytest.importorskip("llama_cpp")
    import math

    from desktop import bench
    from desktop.llama_worker import PROMPT_BATCH

    opened = []

    def dying_on_prompts(*args, **kwargs):
        worker = real_open(*args, **kwargs)
        opened.append(worker.prompt_batch)
        if worker.prompt_batch == PROMPT_BATCH:
            os.kill(worker.pid, signal.SIGSEGV)
            worker._proc.wait()
        return worker

    real_open = bench.open_llama_worker
    monkeypatch.setattr(bench, "open_llama_worker", dying_on_prompts)
    crashes: dict[str, str] = {}
    try:
        worker = bench.open_comparator(tiny_shape / "model.gguf", 1, [300, 301, 302], crashes,
                                       "llama-cpp", n_ctx=512)
        prefill, decode = bench.comparator_runner(worker)([300, 301, 302, 303], 3)
    finally:
        bench._close_workers()
    assert opened == [PROMPT_BATCH, 1]
    assert math.isnan(prefill) and decode > 0
    assert list(crashes) == ["llama-cpp"]
    assert crashes["llama-cpp"].startswith("llama.cpp crashed with SIGSEGV while running a "
                                           "3-token prompt")


def test_a_comparator_refusal_is_not_worked_around(tiny_shape):
    """Only a crash leads to one-token prompts: a request llama.cpp refuses (a token id past
    the vocabulary) is a failure as it is."""
    pytest.importorskip("llama_cpp")
    from desktop import bench
    from desktop.llama_worker import ComparatorFailed

    crashes: dict[str, str] = {}
    try:
        with pytest.raises(ComparatorFailed, match="failed while running a 1-token prompt"):
            bench.open_comparator(tiny_shape / "model.gguf", 1, [10**6], crashes, "llama-cpp",
                                  n_ctx=512)
    finally:
        bench._close_workers()
    assert crashes == {}


def onnxchat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True,
                          text=True, timeout=900, check=False, env={**os.environ, **(env or {})})


def test_bench_decodes_after_a_long_context_and_on_a_model_shape(default_model, tmp_path):
    result = onnxchat("bench", "--model", str(default_model), "--device", "cpu", "--runs", "1",
                      "--prompt-tokens", "8", "--new-tokens", "2", "--long-context", "64",
                      "--shape", "tiny", "--json",
                      env={"ONNXCHAT_BENCH_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["machine"]["isa"]["AVX2"] is not None
    assert report["machine"]["load_average"]["before"]
    assert report["long_context"]["context_tokens"] == 64
    assert report["long_context"]["decode_tok_s"]["onnxchat"] > 0
    assert report["shape"]["shape"] == "tiny" and report["shape"]["quant"] == "q4_0"
    assert report["shape"]["decode_tok_s"]["onnxchat"] > 0
    # Built once: the folder is reused by the next run.
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1


def test_bench_refuses_a_long_context_beyond_the_model(default_model):
    result = onnxchat("bench", "--model", str(default_model), "--long-context", "9000")
    assert result.returncode == 2
    assert result.stderr.strip() == ("onnxchat: error: --long-context 9000 + 32 new tokens "
                                     "exceed the model's context (8192); pass a smaller one or 0")
