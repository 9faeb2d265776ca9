"""The fp16 CUDA graph of a fused export, checked where CI can: on the CPU provider.

ONNX Runtime's CPU provider has fp16 kernels for the fp16 graph's operators
(GroupQueryAttention, MatMulNBits, the fused norms; a few element-wise ops run through casts
it inserts), so the graph itself is tested here, not a stand-in: its structure (types,
operators, the weight blocks read from the CPU graph's file)
and its numbers against the same fused graph computed exactly in fp32 (MatMulNBits accuracy
level 0; the shipped CPU graph uses level 4, which rounds activations to int8: see
models/README.md, "CPU and CUDA numbers").
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from desktop.engine import load_model
from desktop.engine.runtime import SharedKVDecoder, create_session
from export.fp16 import to_fp16
from export.shared_data import save_sharing, stored_tensors

TEXT = [5, 17, 42, 99, 3, 250, 7, 64, 128, 11, 300, 2, 61, 9, 77, 180, 33, 240, 8, 150,
        21, 90, 310, 45, 6, 199, 12, 270, 88, 30, 141, 55]


def exact_fp32(folder: Path, tmp_path: Path) -> Path:
    """The folder's CPU graph with every MatMulNBits at accuracy level 0 (fp32 activations)."""
    model = onnx.load(str(folder / "onnx" / "model.onnx"))
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "accuracy_level":
                attr.i = 0
    path = tmp_path / "exact.onnx"
    onnx.save(model, str(path))
    return path


def teacher_forced(path: Path, ids: list[int], **decoder_options) -> np.ndarray:
    """Last-position logits after each of ``ids``, fed one at a time through the engine's
    shared-buffer decoder on the CPU."""
    session, _ = create_session(path, "cpu", threads=2)
    decoder = SharedKVDecoder(session, "cpu", 128, initial_capacity=8, **decoder_options)
    return np.stack([decoder.forward([token]) for token in ids])


def assert_top1_agrees_or_near_tie(want: np.ndarray, got: np.ndarray, tie: float) -> None:
    """Top-1 equal at every position, except where the reference's two candidates are within
    ``tie`` of each other (an fp16 rounding can then flip the choice)."""
    rows = np.arange(len(want))
    a, b = want.argmax(-1), got.argmax(-1)
    gaps = want[rows, a] - want[rows, b]
    flipped = a != b
    assert (gaps[flipped] <= tie).all(), (gaps[flipped], tie)
    assert flipped.mean() <= 0.05


def test_the_manifest_lists_a_graph_per_device(tiny_llama_fused_model: Path) -> None:
    manifest = json.loads((tiny_llama_fused_model / "manifest.json").read_text())
    assert manifest["schema_version"] == 1  # additive: an older OnnxChat reads onnx.file
    onnx_info = manifest["onnx"]
    assert onnx_info["file"] == "onnx/model.onnx"
    graphs = onnx_info["graphs"]
    assert graphs["cpu"] == {"file": "onnx/model.onnx", "dtype": "float32"}
    cuda = graphs["cuda"]
    assert (cuda["file"], cuda["dtype"], cuda["weights_from"]) == (
        "onnx/model_cuda.onnx", "float16", "onnx/model.onnx")
    assert cuda["check"]["prompt_tokens"] > 0 and cuda["check"]["max_logit_diff"] < 1
    assert "onnx/model_cuda.onnx" in manifest["files"]


def test_the_cuda_graph_is_the_fused_graph_in_fp16(tiny_llama_fused_model: Path) -> None:
    cpu = onnx.load(str(tiny_llama_fused_model / "onnx" / "model.onnx"))
    cuda = onnx.load(str(tiny_llama_fused_model / "onnx" / "model_cuda.onnx"),
                     load_external_data=False)
    ops_cpu = Counter(n.op_type for n in cpu.graph.node)
    ops_cuda = Counter(n.op_type for n in cuda.graph.node)
    assert ops_cuda - Counter({"Cast": ops_cuda["Cast"]}) == ops_cpu - Counter(
        {"Cast": ops_cpu["Cast"]})
    assert ops_cuda["GroupQueryAttention"] == 2 and ops_cuda["MatMulNBits"] == 9
    types = {v.name: v.type.tensor_type.elem_type for v in [*cuda.graph.input,
                                                            *cuda.graph.output]}
    assert types.pop("input_ids") == types.pop("attention_mask") == TensorProto.INT64
    assert types.pop("logits") == TensorProto.FLOAT  # cast once, last position only
    assert set(types.values()) == {TensorProto.FLOAT16}  # every past/present buffer
    assert next(o for o in cuda.graph.output if o.name == "logits").type.tensor_type.shape.dim[
        1].dim_value == 1
    props = {p.key: p.value for p in cuda.metadata_props}
    assert props["onnxchat.dtype"] == "float16" and props["onnxchat.layout"] == "fused"
    assert all(a.i == 0 for n in cuda.graph.node for a in n.attribute
               if a.name == "accuracy_level")
    floats = [i for i in cuda.graph.initializer if i.data_type == TensorProto.FLOAT]
    assert floats == []  # this small model has no tensor big enough to keep in fp32


def test_the_weight_blocks_are_read_from_the_cpu_graph(tiny_llama_fused_model: Path) -> None:
    onnx_dir = tiny_llama_fused_model / "onnx"
    cpu = {i.name: i for i in onnx.load(str(onnx_dir / "model.onnx")).graph.initializer}
    light = onnx.load(str(onnx_dir / "model_cuda.onnx"), load_external_data=False)
    blocks = {n.input[1] for n in light.graph.node if n.op_type == "MatMulNBits"}
    external = {i.name: {e.key: e.value for e in i.external_data}
                for i in light.graph.initializer if i.data_location == TensorProto.EXTERNAL}
    assert blocks <= set(external)
    assert {e["location"] for e in external.values()} == {"model.onnx"}
    full = onnx.load(str(onnx_dir / "model_cuda.onnx"))  # reads those byte ranges
    for init in full.graph.initializer:
        if init.name in blocks:
            assert init.raw_data == cpu[init.name].raw_data
    packed = sum(len(cpu[name].raw_data) for name in blocks)
    cpu_size = (onnx_dir / "model.onnx").stat().st_size
    cuda_size = (onnx_dir / "model_cuda.onnx").stat().st_size
    assert cuda_size < cpu_size - packed  # no second copy of the blocks


def test_fp16_logits_track_exact_fp32(tiny_llama_fused_model: Path, tmp_path: Path) -> None:
    """Closer to the exact fp32 computation than the shipped CPU graph (accuracy level 4),
    and the same top-1 token except where fp32 itself nearly ties."""
    onnx_dir = tiny_llama_fused_model / "onnx"
    want = teacher_forced(exact_fp32(tiny_llama_fused_model, tmp_path), TEXT)
    got = teacher_forced(onnx_dir / "model_cuda.onnx", TEXT)
    shipped = teacher_forced(onnx_dir / "model.onnx", TEXT)
    assert np.isfinite(got).all()
    diff = np.abs(got - want).max()
    assert diff < 0.02 * np.abs(want).max()
    assert diff < np.abs(shipped - want).max() / 3
    assert_top1_agrees_or_near_tie(want, got, tie=2 * diff)


def test_static_decode_is_the_dynamic_decode(tiny_llama_fused_model: Path) -> None:
    """The fixed-shape steps CUDA graph capture needs (a buffer-long mask, preallocated ids)
    give exactly the logits of ordinary steps, across a buffer growth and a rewind."""
    path = tiny_llama_fused_model / "onnx" / "model_cuda.onnx"
    session, _ = create_session(path, "cpu", threads=2)
    plain = SharedKVDecoder(session, "cpu", 128, initial_capacity=8)
    static = SharedKVDecoder(session, "cpu", 128, initial_capacity=8, static_decode=True)
    assert plain.kv_dtype is np.float16
    for decoder in (plain, static):
        decoder.forward(TEXT[:5])
    for token in TEXT[5:20]:  # grows 8 -> 16 -> 32
        np.testing.assert_array_equal(plain.forward([token]), static.forward([token]))
    assert static.capacity == 32
    for decoder in (plain, static):
        decoder.rewind(7)
    for token in TEXT[20:]:
        np.testing.assert_array_equal(plain.forward([token]), static.forward([token]))


def test_tensors_kept_in_fp32_behind_a_cast_give_the_same_numbers(
    tiny_llama_fused_model: Path, tmp_path: Path
) -> None:
    """Below the size threshold tensors are converted; above it they stay fp32 (readable from
    the CPU graph) behind a Cast, which ONNX Runtime folds into an fp16 constant at load, or
    for the embedding a Gather of fp32 rows and then a Cast: the same numbers either way."""
    cpu_path = tiny_llama_fused_model / "onnx" / "model.onnx"
    model = onnx.load(str(cpu_path))
    shared = to_fp16(model, share_bytes=256)
    floats = {i.name for i in shared.graph.initializer if i.data_type == TensorProto.FLOAT}
    assert "model.embed_tokens.weight" in floats and len(floats) > 5
    cast_inputs = {n.input[0] for n in shared.graph.node if n.op_type == "Cast"}
    assert "/model/embed_tokens/Gather/output_0_fp32" in cast_inputs
    assert len(cast_inputs & floats) == len(floats) - 1  # all but the gathered table
    shutil.copy(cpu_path, tmp_path / "model.onnx")
    save_sharing(shared, tmp_path / "shared.onnx", tmp_path / "model.onnx")
    save_sharing(to_fp16(model), tmp_path / "converted.onnx", tmp_path / "model.onnx")
    np.testing.assert_array_equal(teacher_forced(tmp_path / "shared.onnx", TEXT[:8]),
                                  teacher_forced(tmp_path / "converted.onnx", TEXT[:8]))
    options = ort.SessionOptions()  # what ONNX Runtime runs: those casts folded at load
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ort.InferenceSession(str(tmp_path / "shared.onnx"), options,
                         providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    constants = {i.name for i in optimized.graph.initializer}
    assert not [n for n in optimized.graph.node if n.op_type == "Cast" and n.input[0] in constants]


def test_a_cpu_graph_with_external_data_is_shared_too(
    tiny_llama_fused_model: Path, tmp_path: Path
) -> None:
    """Graphs over protobuf's 2 GB keep their weights in model.onnx_data; the CUDA graph then
    points into that file."""
    model = onnx.load(str(tiny_llama_fused_model / "onnx" / "model.onnx"))
    onnx.save(model, str(tmp_path / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx_data")
    # Saving moved the tensors of ``model`` out, as in the export of a big model.
    assert model.graph.initializer[-1].data_location == TensorProto.EXTERNAL
    names = save_sharing(to_fp16(model, base_dir=tmp_path), tmp_path / "model_cuda.onnx",
                         tmp_path / "model.onnx")
    stored = stored_tensors(tmp_path / "model.onnx")
    assert names and {stored[name].location for name in names} == {"model.onnx_data"}
    light = onnx.load(str(tmp_path / "model_cuda.onnx"), load_external_data=False)
    locations = {e.value for i in light.graph.initializer for e in i.external_data
                 if e.key == "location"}
    assert locations == {"model.onnx_data"}
    np.testing.assert_array_equal(
        teacher_forced(tmp_path / "model_cuda.onnx", TEXT[:6]),
        teacher_forced(tiny_llama_fused_model / "onnx" / "model_cuda.onnx", TEXT[:6]))


def test_graphs_the_pass_cannot_convert_are_refused(tiny_llama_fused_model: Path) -> None:
    model = onnx.load(str(tiny_llama_fused_model / "onnx" / "model.onnx"))
    odd = onnx.ModelProto()
    odd.CopyFrom(model)
    odd.graph.node.append(helper.make_node("Softplus", ["logits"], ["soft"]))
    with pytest.raises(ValueError, match="does not know the operator Softplus"):
        to_fp16(odd)
    plain = onnx.ModelProto()
    plain.CopyFrom(model)
    del plain.metadata_props[:]
    with pytest.raises(ValueError, match="only the fused layout"):
        to_fp16(plain)


def greedy_steps(path: Path, prompt: list[int], count: int) -> tuple[list[int], np.ndarray]:
    session, _ = create_session(path, "cpu")
    decoder = SharedKVDecoder(session, "cpu", 1024)
    rows = [decoder.forward(prompt)]
    tokens = [int(rows[-1].argmax())]
    for _ in range(count - 1):
        rows.append(decoder.forward(tokens[-1:]))
        tokens.append(int(rows[-1].argmax()))
    return tokens, np.stack(rows)


@pytest.mark.slow
def test_the_default_models_cuda_graph_answers_like_exact_fp32(
    cuda_default_model: Path, tmp_path: Path
) -> None:
    """16 greedy tokens of the default model's fp16 graph (on the CPU provider) after a chat
    prompt are those of its CPU graph computed exactly; a difference would have to be a
    near tie of the exact computation."""
    model = load_model(cuda_default_model, device="cpu")
    prompt = model.encode(model.template.render(
        [{"role": "user", "content": "Write a short poem about the sea."}]))
    want, want_rows = greedy_steps(exact_fp32(cuda_default_model, tmp_path), prompt, 16)
    got, got_rows = greedy_steps(cuda_default_model / "onnx" / "model_cuda.onnx", prompt, 16)
    diff = float(np.abs(got_rows - want_rows).max())
    if got != want:
        first = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        gap = want_rows[first, want[first]] - want_rows[first, got[first]]
        assert gap <= 2 * diff, (first, gap, diff)
    assert diff < 1.0
