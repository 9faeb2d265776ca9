"""What reading the weights allows: the bytes a decode step reads in each runtime, and how fast
this machine streams that many bytes.

A decode step multiplies one row by every weight matrix, so it reads every weight once, and
the KV cache up to its context. When those bytes do not fit in the CPU's caches, streaming
them decides the step's time however fast the kernels are, and two runtimes that keep the
same weights in different formats differ by their bytes, not by their arithmetic. So the
benchmark counts the bytes each runtime reads — ONNX Runtime's packed weights, not the
graph's initializers, and the GGUF's blocks — and times reading a buffer of the same size
over and over on the same threads: the fastest a step of that size could be on this machine.
The buffer's size is the step's, so a machine whose caches hold the step is measured so.
"""

from __future__ import annotations

import functools
import math
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from desktop.engine import onnx_wire as wire
from desktop.engine.runtime import KVDecoder, SharedKVDecoder

#: ``TensorProto.DataType`` → bytes per element, for the weights a projection may read.
_ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 10: 2, 16: 2}
#: MLAS packs a 4- or 8-bit ``MatMulNBits`` weight for its int8 kernel (accuracy level 4) as
#: the codes, then a float scale and a float block term per block, in panels of 16 columns.
PANEL = 16
INT8_COMPUTE = 4
#: Bytes per value of llama.cpp's cache types (q8_0: 32 int8 codes and an fp16 scale).
LLAMA_CACHE_BYTES = {"f16": 2.0, "q8_0": 34 / 32}


def matmul_nbits_bytes(k: int, n: int, bits: int, block_size: int, accuracy_level: int,
                       zero_points: int = 0) -> int:
    """Bytes of one ``MatMulNBits`` weight as ONNX Runtime's CPU kernel reads it: with the
    int8 kernel, what MLAS packs (checked against the packed weights ONNX Runtime saves:
    tests/cli/test_bench_memory.py); otherwise the codes, the float scales and any zero
    points as the graph holds them."""
    blocks = math.ceil(k / block_size)
    codes = n * blocks * block_size * bits // 8
    if accuracy_level == INT8_COMPUTE:
        return codes + 2 * math.ceil(n / PANEL) * PANEL * blocks * 4
    return codes + n * blocks * 4 + zero_points


@functools.cache
def onnx_weight_bytes(graph: Path) -> int:
    """Bytes of weights one decode step of ``graph`` reads on the CPU: every ``MatMulNBits``
    weight as packed, and every ``MatMul``/``Gemm`` by a weight of the graph (an fp32
    projection, or the block-sum correction's offsets) as stored. The embedding table is
    gathered one row at a time, and norms are a few kilobytes: neither is counted. Counted
    once per file in a process: a benchmark asks for the same graphs row after row."""
    model = wire.graph_of(memoryview(graph.read_bytes()))
    sizes = {}
    for tensor in wire.messages(model, wire.GRAPH_INITIALIZER):
        kinds = wire.ints(tensor, wire.TENSOR_DATA_TYPE)
        dims = wire.ints(tensor, wire.TENSOR_DIMS)
        sizes[wire.string(tensor, wire.TENSOR_NAME)] = (
            math.prod(dims) * _ELEMENT_BYTES.get(kinds[-1] if kinds else 0, 4))
    total = 0
    for node in (wire.read_node(n) for n in wire.messages(model, wire.GRAPH_NODE)):
        if node.op_type == "MatMulNBits":
            a = node.attributes
            zero_points = sizes.get(node.inputs[3], 0) if len(node.inputs) > 3 else 0
            total += matmul_nbits_bytes(a["K"], a["N"], a["bits"], a.get("block_size", 32),
                                        a.get("accuracy_level", 0), zero_points)
        elif node.op_type in ("MatMul", "Gemm") and node.inputs[1] in sizes:
            total += sizes[node.inputs[1]]
    return total


@functools.cache
def gguf_weight_bytes(path: Path) -> int:
    """Bytes of a GGUF's tensors one llama.cpp decode step reads: all of them, but the token
    embedding where the file has its own output matrix (then it is only gathered). With
    tied embeddings, as in the default model, llama.cpp multiplies by it for the logits.
    Counted once per file in a process, as :func:`onnx_weight_bytes`."""
    from gguf import GGUFReader

    tensors = {t.name: int(t.n_bytes) for t in GGUFReader(str(path)).tensors}
    if "output.weight" in tensors:
        tensors.pop("token_embd.weight", None)
    return sum(tensors.values())


def cache_values(decoder: KVDecoder | SharedKVDecoder, context: int) -> int:
    """Keys and values a decode step reads after ``context`` positions of ``decoder``'s
    model (in any runtime: the count is the model's)."""
    return len(decoder.past_names) * decoder.kv_heads * decoder.head_dim * context


#: Bytes each timed pass reads at least (a small buffer is read several times over), so that
#: waking the threads is a small part of it.
PASS_BYTES = 64 * 2**20


def stream_seconds(total: int, threads: int, passes: int = 5) -> float:
    """Median seconds to read ``total`` bytes once, split across ``threads`` threads, each
    reading its own part over and over (numpy's reductions release the GIL). Reading is a
    maximum over int64 values: faster per byte than any product a step computes."""
    words = max(1, total // 8 // threads)
    repeats = max(1, math.ceil(PASS_BYTES / (words * 8 * threads)))
    # each thread's part, seen ``repeats`` times over by one array (a zero stride), so that
    # one call reads it over and over
    parts = [np.lib.stride_tricks.as_strided(np.ones(words, np.int64), (repeats, words), (0, 8))
             for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    times: list[float] = []

    def reader(part: np.ndarray) -> None:
        for _ in range(passes + 1):
            barrier.wait()
            part.max()
            barrier.wait()

    workers = [threading.Thread(target=reader, args=(p,), daemon=True) for p in parts]
    for worker in workers:
        worker.start()
    for i in range(passes + 1):
        barrier.wait()
        started = time.perf_counter()
        barrier.wait()
        if i:  # the first pass faults the pages in
            times.append((time.perf_counter() - started) / repeats)
    for worker in workers:
        worker.join()
    return statistics.median(times)


@dataclass(frozen=True)
class StepRead:
    """One runtime's decode step in one workload: what it reads and how fast it ran."""

    workload: str
    runtime: str
    weights: int
    cache: int
    measured_tok_s: float
    llama_cpp: bool = False

    @property
    def total(self) -> int:
        return self.weights + self.cache


def floors(reads: list[StepRead], threads: int, rounds: int = 5) -> list[dict[str, Any]]:
    """Each step's bytes, the time to stream them here (the median of ``rounds`` rounds
    over every size, interleaved like the benchmark's runs: the machine's caches are
    sometimes shared and sometimes not), and the speed that allows against the measured
    one. For OnnxChat's steps, also that speed against the fastest llama.cpp configuration's
    measured one in the same workload: the most OnnxChat could show against llama.cpp as it
    ran, were its step nothing but reading its bytes."""
    times: dict[int, list[float]] = {read.total: [] for read in reads}
    for _ in range(rounds):
        for total, each in times.items():
            each.append(stream_seconds(total, threads))
    rows: list[dict[str, Any]] = []
    for read in reads:
        seconds = statistics.median(times[read.total])
        row: dict[str, Any] = {
            "workload": read.workload, "runtime": read.runtime,
            "weights_mb": round(read.weights / 1e6, 1), "cache_mb": round(read.cache / 1e6, 1),
            "stream_gb_s": round(read.total / seconds / 1e9, 1),
            "reading_alone_tok_s": round(1 / seconds, 1),
            "measured_tok_s": round(read.measured_tok_s, 1),
            "share_of_reading_alone": round(read.measured_tok_s * seconds, 2)}
        llama = [r.measured_tok_s for r in reads if r.workload == read.workload and r.llama_cpp]
        if llama and not read.llama_cpp:
            row["reading_alone_versus_llama_cpp"] = round(1 / seconds / max(llama), 2)
        rows.append(row)
    return rows


def onnx_step_bytes(graph: Path, decoder: KVDecoder | SharedKVDecoder, context: int
                    ) -> tuple[int, int]:
    """The weights and the cache an OnnxChat decode step of ``graph`` reads after
    ``context`` positions of ``decoder``'s cache."""
    cache = cache_values(decoder, context) * np.dtype(decoder.kv_dtype).itemsize
    return onnx_weight_bytes(graph), cache


def onnx_step(workload: str, runtime: str, graph: Path, decoder: KVDecoder | SharedKVDecoder,
              context: int, measured_tok_s: float) -> StepRead:
    """An OnnxChat decode step of ``graph`` (:func:`onnx_step_bytes`) and its speed."""
    return StepRead(workload, runtime, *onnx_step_bytes(graph, decoder, context),
                    measured_tok_s)


def llama_step(workload: str, runtime: str, gguf: Path, values: int, kv_type: str,
               measured_tok_s: float) -> StepRead:
    """llama.cpp's decode step on ``gguf`` with ``values`` keys and values cached in
    ``kv_type``."""
    return StepRead(workload, runtime, gguf_weight_bytes(gguf),
                    round(values * LLAMA_CACHE_BYTES[kv_type]), measured_tok_s, llama_cpp=True)
