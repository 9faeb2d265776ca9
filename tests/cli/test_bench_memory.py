"""What a decode step reads, as the benchmark counts it (desktop/bench_memory.py): checked
against the packed weights ONNX Runtime itself saves, and against GGUF files' layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from desktop import bench_memory
from desktop.bench import default_gguf
from desktop.engine import onnx_wire as wire

#: (K, N, bits, accuracy level): for the int8 kernel a panel-aligned 4-bit weight, one whose
#: N is not a multiple of the panel, an 8-bit one (the default model's LM head is 8-bit); and
#: a 4-bit weight for the float kernel, which packs only the codes and reads the graph's
#: scales.
PROJECTIONS = [(64, 48, 4, 4), (96, 40, 4, 4), (64, 32, 8, 4), (64, 48, 4, 1)]


def _projection_graph(path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes, initializers, width = [], [], 0
    for i, (k, n, bits, level) in enumerate(PROJECTIONS):
        blocks = math.ceil(k / 32)
        initializers += [
            numpy_helper.from_array(
                rng.integers(0, 256, (n, blocks, 32 * bits // 8), dtype=np.uint8), f"w{i}"),
            numpy_helper.from_array(rng.random(n * blocks, dtype=np.float32), f"s{i}")]
        nodes.append(helper.make_node("MatMulNBits", [f"x{k}", f"w{i}", f"s{i}"], [f"y{i}"],
                                      name=f"p{i}", domain="com.microsoft", K=k, N=n,
                                      bits=bits, block_size=32, accuracy_level=level))
        width = max(width, n)
    initializers.append(numpy_helper.from_array(np.ones((64, 24), np.float32), "dense"))
    nodes.append(helper.make_node("MatMul", ["x64", "dense"], ["y_dense"], name="dense"))
    inputs = [helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, [1, k])
              for k in sorted({k for k, _, _, _ in PROJECTIONS})]
    outputs = [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None)
               for n in nodes]
    graph = helper.make_graph(nodes, "projections", inputs, outputs, initializers)
    model = helper.make_model(graph, ir_version=10, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    path.write_bytes(model.SerializeToString())


def _packed_lengths(path: Path, saved: Path) -> dict[str, int]:
    """Each weight's packed length in bytes, as ONNX Runtime writes it when asked to save the
    weights it packed (what desktop/engine/folding.py maps back)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(saved)
    for key, value in (
            ("session.optimized_model_external_initializers_file_name", "saved.data"),
            ("session.optimized_model_external_initializers_min_size_in_bytes", "1"),
            ("session.save_external_prepacked_constant_initializers", "1")):
        options.add_session_config_entry(key, value)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = wire.graph_of(memoryview(saved.read_bytes()))
    lengths = {}
    for tensor in wire.messages(graph, wire.GRAPH_INITIALIZER):
        packed = [v for k, v in wire.external_data(tensor).items() if k.startswith("prepacked")]
        if packed:
            lengths[wire.string(tensor, wire.TENSOR_NAME)] = int(
                packed[0].partition("|")[2].split(";")[1])
    return lengths


def test_a_projection_is_counted_as_onnx_runtime_packs_it(tmp_path):
    graph = tmp_path / "projections.onnx"
    _projection_graph(graph)
    packed = _packed_lengths(graph, tmp_path / "saved.onnx")
    counted = 0
    for i, (k, n, bits, level) in enumerate(PROJECTIONS):
        count = bench_memory.matmul_nbits_bytes(k, n, bits, 32, level)
        if level == 1:  # the codes packed, the float scales read from the graph
            assert packed[f"w{i}"] == count - n * (k // 32) * 4 == n * k // 2
        else:  # ONNX Runtime pads its packed buffer to an alignment: at most 128 bytes more
            assert count <= packed[f"w{i}"] <= count + 128, (k, n, bits)
        counted += count
    # the dense projection's fp32 weight is read as it is stored
    assert bench_memory.onnx_weight_bytes(graph) == counted + 64 * 24 * 4


def _gguf(path: Path, tensors: dict[str, np.ndarray]) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_step_reads_a_tied_embedding_and_not_an_untied_one(tmp_path):
    embedding = np.zeros((10, 8), np.float32)  # 320 bytes
    layer = {"blk.0.attn_q.weight": np.zeros((8, 8), np.float32)}  # 256 bytes
    _gguf(tmp_path / "tied.gguf", {"token_embd.weight": embedding, **layer})
    _gguf(tmp_path / "untied.gguf", {"token_embd.weight": embedding, **layer,
                                     "output.weight": np.zeros((10, 8), np.float16)})
    assert bench_memory.gguf_weight_bytes(tmp_path / "tied.gguf") == 320 + 256
    assert bench_memory.gguf_weight_bytes(tmp_path / "untied.gguf") == 256 + 160


def test_the_default_gguf_s_step_reads_every_block_of_the_file():
    from gguf import GGUFReader

    path = default_gguf()
    data = path.stat().st_size - GGUFReader(str(path)).data_offset
    counted = bench_memory.gguf_weight_bytes(path)
    # its embedding is tied (llama.cpp multiplies by it for the logits): the whole data
    # section but the padding between tensors (at most 31 bytes each, 272 tensors)
    assert data - 272 * 32 < counted <= data
    assert counted == pytest.approx(96.6e6, rel=1e-3)


def test_streaming_a_step_s_bytes_reads_them(monkeypatch):
    """The reader's passes are timed over the bytes asked for, whatever the threads."""
    seen = []
    real = np.lib.stride_tricks.as_strided

    def spy(array, shape, strides):
        seen.append((array.nbytes, shape))
        return real(array, shape, strides)

    monkeypatch.setattr(np.lib.stride_tricks, "as_strided", spy)
    seconds = bench_memory.stream_seconds(200 * 2**20, threads=2, passes=2)
    assert 0 < seconds < 60
    assert [nbytes for nbytes, _ in seen] == [100 * 2**20] * 2
    assert all(shape == (1, 100 * 2**20 // 8) for _, shape in seen)
    # a small buffer is read over and over, so each pass reads at least PASS_BYTES
    seen.clear()
    bench_memory.stream_seconds(2**20, threads=2, passes=2)
    assert all(shape[0] * nbytes * 2 >= bench_memory.PASS_BYTES for nbytes, shape in seen)
