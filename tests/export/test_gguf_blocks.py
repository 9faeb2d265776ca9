"""GGUF blocks carried into MatMulNBits without re-quantizing.

A tiny llama GGUF is written the way llama.cpp's converter writes one (Q and K rows permuted
for interleaved rotary, weights quantized by gguf-py); the fused graph built from its blocks
must compute what the dequantized fp32 weights compute, to float tolerance.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import onnxruntime as ort
import pytest

from export.builders import (
    BlockLinear,
    DecoderShape,
    DecoderWeights,
    DenseLinear,
    FusedOptions,
    LayerWeights,
    build_fused_model,
)
from export.gguf_blocks import block_linear, unpermute_rows, weights_from_gguf
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


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter: Hugging Face rotate-half rows → interleaved rotary rows."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def write_gguf(path: Path, qtype: Q, seed: int = 0) -> DecoderWeights:
    """Write a tiny llama GGUF; return its weights dequantized, in Hugging Face layout."""
    rng = np.random.default_rng(seed)
    s = SHAPE
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(s.num_layers)
    expected = DecoderWeights(embed_tokens=np.zeros(0, np.float32))

    def add(name: str, rows: np.ndarray, kind: Q) -> np.ndarray:
        """Store (out, in) rows; return what a reader gets back, as float32 rows."""
        rows = rows.astype(np.float32)
        if kind == Q.F32:
            writer.add_tensor(name, rows)
            return rows
        data = gguf.quants.quantize(rows, kind)
        writer.add_tensor(name, data, raw_dtype=kind)
        return gguf.quants.dequantize(data, kind).reshape(rows.shape)

    def dense(name: str, n_out: int, n_in: int, heads: int = 0) -> DenseLinear:
        hf_rows = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.2
        stored = llama_cpp_permute(hf_rows, heads) if heads else hf_rows
        back = add(name, stored, qtype)
        if heads:  # transformers' reverse permutation, the reference
            back = back.reshape(heads, n_out // heads // 2, 2, n_in).swapaxes(1, 2)
            back = back.reshape(n_out, n_in)
        return DenseLinear(np.ascontiguousarray(back.T))

    def norm(name: str) -> np.ndarray:
        return add(name, rng.uniform(0.5, 1.5, s.hidden_size).astype(np.float32), Q.F32)

    h, q_out = s.hidden_size, s.num_heads * s.head_dim
    kv = s.num_kv_heads * s.head_dim
    embed = rng.standard_normal((s.vocab_size, h)).astype(np.float32)
    expected.embed_tokens = add("token_embd.weight", embed, Q.Q8_0)
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


def run_steps(path: Path, prompt: list[int], steps: int) -> np.ndarray:
    """Logits after the prompt and after each greedy step, with growing (unshared) caches."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    kv = (1, SHAPE.num_kv_heads, 0, SHAPE.head_dim)
    past = {
        f"past_key_values.{i}.{kind}": np.zeros(kv, np.float32)
        for i in range(SHAPE.num_layers)
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


@pytest.mark.parametrize("qtype", [Q.Q4_1, Q.Q4_0, Q.Q8_0])
def test_gguf_blocks_compute_the_dequantized_model(qtype: Q, tmp_path: Path) -> None:
    expected = write_gguf(tmp_path / "tiny.gguf", qtype)
    carried = weights_from_gguf(tmp_path / "tiny.gguf", SHAPE)
    assert isinstance(carried.layers[0].qkv, BlockLinear)
    assert carried.layers[0].qkv.bits == (8 if qtype == Q.Q8_0 else 4)
    assert (carried.layers[0].qkv.correction is not None) == (qtype == Q.Q4_1)
    np.testing.assert_array_equal(carried.embed_tokens, expected.embed_tokens)
    options = FusedOptions(max_length=64, accuracy_level=0, accuracy_level_8bit=0)
    save_model(build_fused_model(SHAPE, carried, options), tmp_path / "blocks.onnx")
    save_model(build_fused_model(SHAPE, expected, options), tmp_path / "dense.onnx")
    prompt = [3, 14, 15, 92, 65, 35, 89, 79]
    got = run_steps(tmp_path / "blocks.onnx", prompt, 6)
    want = run_steps(tmp_path / "dense.onnx", prompt, 6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


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


def test_unsupported_block_type_is_refused(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "k.gguf"), "llama")
    rows = np.random.default_rng(0).standard_normal((4, 256)).astype(np.float32)
    writer.add_tensor("w", gguf.quants.quantize(rows, Q.Q5_0), raw_dtype=Q.Q5_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tensor = gguf.GGUFReader(str(tmp_path / "k.gguf")).tensors[0]
    with pytest.raises(ValueError, match="Q5_0"):
        block_linear(tensor)
