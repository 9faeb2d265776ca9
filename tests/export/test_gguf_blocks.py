"""GGUF blocks carried into MatMulNBits without re-quantizing.

Each block type is checked against gguf's own ``dequantize`` on random blocks (every bit
pattern of codes, scales and mins occurs): one ``MatMulNBits`` (plus the block-sum
correction) at accuracy level 0 must compute the dequantized fp32 product to 1e-5. Then a
tiny llama GGUF is written the way llama.cpp's converter writes one (Q and K rows permuted for
interleaved rotary), in single types and in a Q4_K_M-like mix; the fused graph built from its
blocks must compute what the dequantized fp32 weights compute, to float tolerance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.builders import (
    BlockLinear,
    DecoderShape,
    DecoderWeights,
    DenseLinear,
    FusedOptions,
    LayerWeights,
    UnplacedTensorError,
    build_fused_model,
)
from export.gguf_blocks import (
    EXACT_4BIT,
    EXACT_8BIT,
    REQUANTIZED,
    block_linear,
    can_carry_blocks,
    carry_plan,
    mapping_of,
    unpermute_rows,
    weights_from_gguf,
)
from export.gguf_header import GgufFile, GgufHeaderError
from export.onnx_files import save_model

Q = gguf.GGMLQuantizationType
SHAPE = DecoderShape(
    num_layers=2,
    hidden_size=64,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    intermediate_size=96,
    vocab_size=200,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    context_length=128,
)
# K-quants need 256 input features per row.
K_SHAPE = replace(SHAPE, hidden_size=256, head_dim=64, intermediate_size=512)
# Byte offsets of the fp16 fields (d, and dmin or m) in one block, and a d that keeps random
# weights within about ±0.5.
F16_FIELDS = {
    Q.Q4_0: ([0], 0.05), Q.Q4_1: ([0, 2], 0.03), Q.Q5_0: ([0], 0.03), Q.Q5_1: ([0, 2], 0.015),
    Q.Q8_0: ([0], 0.004), Q.IQ4_NL: ([0], 0.004), Q.Q2_K: ([80, 82], 0.01),
    Q.Q3_K: ([108], 0.004), Q.Q4_K: ([0, 2], 5e-4), Q.Q5_K: ([0, 2], 2.5e-4),
    Q.Q6_K: ([208], 1e-4), Q.IQ4_XS: ([0], 1e-4), Q.IQ2_XS: ([0], 0.01),
}
EXACT = {
    Q.Q4_0: EXACT_4BIT, Q.Q4_1: EXACT_4BIT, Q.Q2_K: EXACT_4BIT, Q.Q3_K: EXACT_4BIT,
    Q.Q4_K: EXACT_4BIT, Q.Q5_0: EXACT_8BIT, Q.Q5_1: EXACT_8BIT, Q.Q8_0: EXACT_8BIT,
    Q.Q5_K: EXACT_8BIT, Q.Q6_K: EXACT_8BIT, Q.IQ4_NL: EXACT_8BIT, Q.IQ4_XS: EXACT_8BIT,
}


def random_blocks(kind: Q, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(n, row bytes) of random GGUF blocks whose fp16 fields are finite, of either sign."""
    per_block, nbytes = gguf.GGML_QUANT_SIZES[kind]
    fields, d = F16_FIELDS[kind]
    raw = rng.integers(0, 256, (n, k // per_block, nbytes), dtype=np.uint8)
    for at in fields:
        values = rng.uniform(0.2, 1.0, raw.shape[:2]) * d * rng.choice([-1, 1], raw.shape[:2])
        raw[..., at : at + 2] = values.astype(np.float16)[..., None].view(np.uint8)
    return raw.reshape(n, -1)


def write_tensors(path: Path, tensors: dict[str, tuple[np.ndarray, Q]]) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    for name, (data, kind) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=None if kind == Q.F32 else kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def linear_session(lin: BlockLinear, accuracy_level: int) -> ort.InferenceSession:
    """``x @ W`` as BlockLinear defines it: MatMulNBits with the implicit zero point, plus
    the input's per-block sums times ``correction``."""
    k, n = lin.shape
    nodes = [helper.make_node(
        "MatMulNBits", ["x", "b", "s"], ["y0"], domain="com.microsoft", K=k, N=n,
        bits=lin.bits, block_size=lin.block_size, accuracy_level=accuracy_level)]
    inits = [numpy_helper.from_array(lin.packed, "b"), numpy_helper.from_array(lin.scales, "s")]
    out = "y0"
    if lin.correction is not None:
        shape = np.array([0, k // lin.block_size, lin.block_size], np.int64)
        inits += [numpy_helper.from_array(shape, "shape"),
                  numpy_helper.from_array(np.array([-1], np.int64), "axes"),
                  numpy_helper.from_array(lin.correction, "c")]
        nodes += [helper.make_node("Reshape", ["x", "shape"], ["xb"]),
                  helper.make_node("ReduceSum", ["xb", "axes"], ["sums"], keepdims=0),
                  helper.make_node("MatMul", ["sums", "c"], ["off"]),
                  helper.make_node("Add", ["y0", "off"], ["y"])]
        out = "y"
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["m", n])], inits)
    model = helper.make_model(graph, ir_version=10, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", list(EXACT), ids=lambda kind: kind.name)
def test_each_block_type_maps_exactly(kind: Q, tmp_path: Path) -> None:
    rng = np.random.default_rng(int(kind))
    n, k = 48, 512
    raw = random_blocks(kind, n, k, rng)
    write_tensors(tmp_path / "t.gguf", {"w": (raw, kind)})
    lin = block_linear(GgufFile(tmp_path / "t.gguf").tensors["w"])
    assert isinstance(lin, BlockLinear)
    assert mapping_of(kind) == EXACT[kind]
    assert lin.bits == (4 if EXACT[kind] == EXACT_4BIT else 8)
    weights = gguf.quants.dequantize(raw, kind).reshape(n, k).astype(np.float64)
    x = rng.standard_normal((6, k)).astype(np.float32)
    want = x.astype(np.float64) @ weights.T
    got = linear_session(lin, accuracy_level=0).run(None, {"x": x})[0]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_tensor_table_agrees_with_gguf_py(tmp_path: Path) -> None:
    """The export reads tensors through its own header parser (one open, one tensor at a
    time); names, types, shapes and bytes must be gguf-py's, and a cut file is refused."""
    rng = np.random.default_rng(3)
    tensors = {"a": (random_blocks(Q.Q4_K, 8, 512, rng), Q.Q4_K),
               "b": (random_blocks(Q.Q8_0, 4, 64, rng), Q.Q8_0),
               "norm": (rng.standard_normal(64).astype(np.float32), Q.F32)}
    write_tensors(tmp_path / "t.gguf", tensors)
    theirs = {t.name: t for t in gguf.GGUFReader(str(tmp_path / "t.gguf")).tensors}
    with GgufFile(tmp_path / "t.gguf") as ours:
        assert list(ours.tensors) == list(theirs)
        for name, tensor in ours.tensors.items():
            other = theirs[name]
            assert (tensor.tensor_type, tensor.shape) == (other.tensor_type,
                                                          tuple(int(d) for d in other.shape))
            assert tensor.data.tobytes() == np.asarray(other.data).tobytes()
            assert tensor.data.dtype == np.asarray(other.data).dtype
    data = (tmp_path / "t.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:-100])
    with pytest.raises(GgufHeaderError, match="truncated"):
        GgufFile(tmp_path / "cut.gguf")


def test_types_without_a_linear_code_are_requantized_to_8_bits(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    raw = random_blocks(Q.IQ2_XS, 16, 256, rng)
    write_tensors(tmp_path / "t.gguf", {"w": (raw, Q.IQ2_XS)})
    lin = block_linear(GgufFile(tmp_path / "t.gguf").tensors["w"])
    assert mapping_of(Q.IQ2_XS) == REQUANTIZED
    assert isinstance(lin, BlockLinear) and lin.bits == 8
    weights = gguf.quants.dequantize(raw, Q.IQ2_XS).reshape(16, 256)
    x = rng.standard_normal((4, 256)).astype(np.float32)
    want = x @ weights.T
    got = linear_session(lin, accuracy_level=0).run(None, {"x": x})[0]
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()
    plan = carry_plan(tmp_path / "t.gguf")
    assert plan == {"IQ2_XS": {"tensors": 1, "carried_as": REQUANTIZED, "names": ["w"]}}


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter: Hugging Face rotate-half rows → interleaved rotary rows."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


QUANTIZABLE = {Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0}  # what gguf-py can quantize itself


def write_gguf(path: Path, types: dict[str, Q] | Q, shape: DecoderShape = SHAPE,
               seed: int = 0) -> DecoderWeights:
    """Write a tiny llama GGUF; return its weights dequantized, in Hugging Face layout.

    ``types`` maps a tensor name's role (``attn_q`` … ``ffn_down``, ``token_embd``) to its
    block type, or is one type for every projection (the embedding is Q8_0 then). Types
    gguf-py cannot quantize are written as random blocks."""
    rng = np.random.default_rng(seed)
    s = shape
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(s.num_layers)
    expected = DecoderWeights(embed_tokens=np.zeros(0, np.float32))

    def kind_of(name: str) -> Q:
        role = name.split(".")[-2]
        if isinstance(types, dict):
            return types[role]
        return Q.Q8_0 if role == "token_embd" else types

    def add(name: str, rows: np.ndarray, kind: Q) -> np.ndarray:
        """Store (out, in) rows; return what a reader gets back, as float32 rows."""
        rows = rows.astype(np.float32)
        if kind == Q.F32:
            writer.add_tensor(name, rows)
            return rows
        if kind in QUANTIZABLE:
            data = gguf.quants.quantize(rows, kind)
        else:
            data = random_blocks(kind, *rows.shape, rng)
        writer.add_tensor(name, data, raw_dtype=kind)
        return gguf.quants.dequantize(data, kind).reshape(rows.shape)

    def dense(name: str, n_out: int, n_in: int, heads: int = 0) -> DenseLinear:
        hf_rows = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.2
        stored = llama_cpp_permute(hf_rows, heads) if heads else hf_rows
        back = add(name, stored, kind_of(name))
        if heads:  # transformers' reverse permutation, the reference
            back = back.reshape(heads, n_out // heads // 2, 2, n_in).swapaxes(1, 2)
            back = back.reshape(n_out, n_in)
        return DenseLinear(np.ascontiguousarray(back.T))

    def norm(name: str) -> np.ndarray:
        return add(name, rng.uniform(0.5, 1.5, s.hidden_size).astype(np.float32), Q.F32)

    h, q_out = s.hidden_size, s.num_heads * s.head_dim
    kv = s.num_kv_heads * s.head_dim
    embed = rng.standard_normal((s.vocab_size, h)).astype(np.float32)
    expected.embed_tokens = add("token_embd.weight", embed, kind_of("token_embd.weight"))
    for i in range(s.num_layers):
        p = f"blk.{i}."
        q = dense(p + "attn_q.weight", q_out, h, s.num_heads)
        k = dense(p + "attn_k.weight", kv, h, s.num_kv_heads)
        v = dense(p + "attn_v.weight", kv, h)
        expected.layers.append(
            LayerWeights(
                attn_norm=norm(p + "attn_norm.weight"),
                qkv=DenseLinear(np.concatenate([q.weight, k.weight, v.weight], axis=1)),
                o_proj=dense(p + "attn_output.weight", h, q_out),
                mlp_norm=norm(p + "ffn_norm.weight"),
                gate_proj=dense(p + "ffn_gate.weight", s.intermediate_size, h),
                up_proj=dense(p + "ffn_up.weight", s.intermediate_size, h),
                down_proj=dense(p + "ffn_down.weight", h, s.intermediate_size),
            )
        )
    expected.final_norm = norm("output_norm.weight")
    expected.lm_head = DenseLinear(np.ascontiguousarray(expected.embed_tokens.T))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


def run_steps(path: Path, prompt: list[int], steps: int, shape: DecoderShape = SHAPE) -> np.ndarray:
    """Logits after the prompt and after each greedy step, with growing (unshared) caches."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    kv = (1, shape.num_kv_heads, 0, shape.head_dim)
    past = {
        f"past_key_values.{i}.{kind}": np.zeros(kv, np.float32)
        for i in range(shape.num_layers)
        for kind in ("key", "value")
    }
    ids, length, logits = prompt, 0, []
    names = [o.name for o in sess.get_outputs()]
    for _ in range(steps + 1):
        length += len(ids)
        feeds = {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.ones((1, length), np.int64),
            **past,
        }
        out = dict(zip(names, sess.run(None, feeds), strict=True))
        past = {
            n.replace("present.", "past_key_values."): v for n, v in out.items() if n != "logits"
        }
        logits.append(out["logits"][0, -1])
        ids = [int(logits[-1].argmax())]
    return np.stack(logits)


def assert_same_model(path: Path, expected: DecoderWeights, shape: DecoderShape,
                      tmp_path: Path) -> DecoderWeights:
    carried = weights_from_gguf(path, shape)
    np.testing.assert_array_equal(carried.embed_tokens, expected.embed_tokens)
    options = FusedOptions(max_length=64, accuracy_level=0, accuracy_level_8bit=0)
    save_model(build_fused_model(shape, carried, options), tmp_path / "blocks.onnx")
    save_model(build_fused_model(shape, expected, options), tmp_path / "dense.onnx")
    prompt = [3, 14, 15, 92, 65, 35, 89, 79]
    got = run_steps(tmp_path / "blocks.onnx", prompt, 6, shape)
    want = run_steps(tmp_path / "dense.onnx", prompt, 6, shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    return carried


@pytest.mark.parametrize("qtype", [Q.Q4_1, Q.Q4_0, Q.Q8_0, Q.Q5_0, Q.Q5_1],
                         ids=lambda kind: kind.name)
def test_gguf_blocks_compute_the_dequantized_model(qtype: Q, tmp_path: Path) -> None:
    expected = write_gguf(tmp_path / "tiny.gguf", qtype)
    carried = assert_same_model(tmp_path / "tiny.gguf", expected, SHAPE, tmp_path)
    qkv = carried.layers[0].qkv
    assert isinstance(qkv, BlockLinear)
    assert qkv.bits == (4 if qtype in (Q.Q4_0, Q.Q4_1) else 8)
    assert (qkv.correction is not None) == (qtype in (Q.Q4_1, Q.Q5_1))


def test_a_q4_k_m_like_mix_computes_the_dequantized_model(tmp_path: Path) -> None:
    """Q4_K projections with Q6_K values and Q5_K down projections (as llama.cpp's Q4_K_M and
    Q5_K_M mix them), a Q6_K embedding tied to the head: Q, K and V are widened to one
    format before they are packed together, still exactly."""
    types = {"attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q4_K,
             "ffn_gate": Q.Q4_K, "ffn_up": Q.Q4_K, "ffn_down": Q.Q5_K, "token_embd": Q.Q6_K}
    expected = write_gguf(tmp_path / "mix.gguf", types, K_SHAPE)
    carried = assert_same_model(tmp_path / "mix.gguf", expected, K_SHAPE, tmp_path)
    layer = carried.layers[0]
    assert (layer.qkv.bits, layer.qkv.block_size) == (8, 16)
    assert layer.qkv.correction is not None  # from Q4_K's mins
    assert (layer.o_proj.bits, layer.o_proj.block_size) == (4, 32)
    assert (layer.down_proj.bits, layer.down_proj.block_size) == (8, 32)
    assert carry_plan(tmp_path / "mix.gguf") == {
        "Q6_K": {"tensors": 3, "carried_as": EXACT_8BIT},
        "Q4_K": {"tensors": 10, "carried_as": EXACT_4BIT},
        "Q5_K": {"tensors": 2, "carried_as": EXACT_8BIT},
    }


def test_q4_1_graph_has_block_offsets_and_no_float_zero_points(tmp_path: Path) -> None:
    write_gguf(tmp_path / "tiny.gguf", Q.Q4_1)
    weights = weights_from_gguf(tmp_path / "tiny.gguf", SHAPE)
    model = build_fused_model(SHAPE, weights, FusedOptions(max_length=64))
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert all(len(n.input) == 3 for n in nbits)  # implicit zero point: the fast kernel
    offsets = [n for n in model.graph.node if n.name.endswith("/offset/MatMul")]
    assert len(offsets) == 4 * SHAPE.num_layers  # qkv, o, gate+up, down; head is Q8_0


def test_unpermute_inverts_llama_cpp_permutation() -> None:
    w = np.arange(24 * 5, dtype=np.float32).reshape(24, 5)  # (out, in) rows, 3 heads
    lin = DenseLinear(np.ascontiguousarray(llama_cpp_permute(w, 3).T))
    np.testing.assert_array_equal(unpermute_rows(lin, 3).weight, w.T)


def test_a_tensor_the_family_does_not_have_is_refused_not_dropped(tmp_path: Path) -> None:
    write_gguf(tmp_path / "tiny.gguf", Q.Q4_0)
    assert can_carry_blocks(tmp_path / "tiny.gguf")
    weights_from_gguf(tmp_path / "tiny.gguf", SHAPE)
    # A tensor no family has (the builders' own tests refuse a stray tensor of a known name).
    extra = {"blk.0.attn_extra.weight": (np.zeros((4, SHAPE.hidden_size), np.float32), Q.F32)}
    write_tensors(tmp_path / "extra.gguf", extra)
    with pytest.raises(UnplacedTensorError, match=r"blk\.0\.attn_extra\.weight"):
        weights_from_gguf(tmp_path / "extra.gguf", SHAPE)
