"""Carry a GGUF file's quantized blocks into the fused graph unchanged.

Re-quantizing weights that are already 4-bit loses quality (perplexity 23.1 → 29.9 on the
default model); mapping the GGUF blocks onto ``MatMulNBits`` keeps them bit for bit:

* ``Q4_0`` (``w = d·(q − 8)``) is exactly ``MatMulNBits`` bits 4 with its implicit zero point 8.
* ``Q8_0`` (``w = d·q``, signed) is exactly bits 8 with codes ``q + 128`` and zero point 128.
* ``Q4_1`` (``w = d·q + m``) is bits 4 with zero point 8 plus a per-block offset
  ``(8·d + m)``, applied as ``ReduceSum`` of the input over each block times a
  (K/32, N) fp32 matrix (``BlockLinear.correction``). The operator's float zero points would
  express ``m`` too, but that kernel is about 30× slower on CPU.

llama.cpp stores Q and K projections with their rows permuted for its interleaved rotary
embedding; the rows are put back in Hugging Face order so the fused graph, its KV cache and
the Optimum export it is checked against all agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.fuse import (
    BlockLinear,
    DecoderShape,
    DecoderWeights,
    DenseLinear,
    LayerWeights,
    Linear,
    concat_outputs,
    pack_codes,
)

QK = 32  # elements per block in Q4_0, Q4_1 and Q8_0


def _reader(path: Path):
    import gguf

    return gguf.GGUFReader(str(path))


def _blocks(tensor, block_bytes: int) -> np.ndarray:
    """Raw rows (N, bytes) → (N, K/32, block_bytes) uint8 blocks."""
    data = np.asarray(tensor.data, dtype=np.uint8)
    n = data.shape[0]
    return data.reshape(n, -1, block_bytes)


def _half(blocks: np.ndarray, start: int) -> np.ndarray:
    """The fp16 field at byte ``start`` of every block, as float32 (N, K/32)."""
    return (
        np.ascontiguousarray(blocks[..., start : start + 2])
        .view(np.float16)[..., 0]
        .astype(np.float32)
    )


def block_linear(tensor) -> Linear:
    """One GGUF weight (rows = output features) as a linear the fused graph can run exactly."""
    import gguf

    kind = tensor.tensor_type
    k, n = (int(x) for x in tensor.shape[:2])
    if kind == gguf.GGMLQuantizationType.F32 or kind == gguf.GGMLQuantizationType.F16:
        rows = np.asarray(tensor.data).reshape(n, k).astype(np.float32)
        return DenseLinear(np.ascontiguousarray(rows.T))
    if k % QK:
        raise ValueError(f"{tensor.name}: {k} input features is not a whole number of blocks")
    if kind == gguf.GGMLQuantizationType.Q4_1:
        blocks = _blocks(tensor, 4 + QK // 2)
        d, m = _half(blocks, 0), _half(blocks, 2)
        qs = blocks[..., 4:]
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # elements 0-15, then 16-31
        return BlockLinear(
            in_features=k,
            out_features=n,
            bits=4,
            block_size=QK,
            packed=pack_codes(codes.reshape(n, k), 4, QK),
            scales=d,
            correction=np.ascontiguousarray((8.0 * d + m).T),
        )
    if kind == gguf.GGMLQuantizationType.Q4_0:
        blocks = _blocks(tensor, 2 + QK // 2)
        qs = blocks[..., 2:]
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
        return BlockLinear(k, n, 4, QK, pack_codes(codes.reshape(n, k), 4, QK), _half(blocks, 0))
    if kind == gguf.GGMLQuantizationType.Q8_0:
        blocks = _blocks(tensor, 2 + QK)
        codes = blocks[..., 2:].view(np.int8).astype(np.int16) + 128
        return BlockLinear(k, n, 8, QK, pack_codes(codes.reshape(n, k), 8, QK), _half(blocks, 0))
    raise ValueError(
        f"{tensor.name} is {kind.name}; carrying GGUF blocks supports Q4_0, Q4_1, Q8_0, F16 and "
        "F32 only — use a re-quantizing recipe for this file"
    )


def can_carry_blocks(path: Path) -> bool:
    """Whether every weight of the GGUF file is of a block type the fused graph carries exactly
    (so the ``q4-gguf`` recipe applies), and its architecture is one the fused graph builds."""
    import gguf

    from export.fuse import FUSABLE_MODEL_TYPES

    reader = _reader(path)
    field = reader.fields.get("general.architecture")
    architecture = bytes(field.parts[field.data[0]]).decode("utf-8") if field else None
    carried = {gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1,
               gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F16,
               gguf.GGMLQuantizationType.F32}
    return architecture in FUSABLE_MODEL_TYPES and all(
        t.tensor_type in carried for t in reader.tensors)


def unpermute_rows(lin: Linear, n_heads: int) -> Linear:
    """Undo llama.cpp's rotary row permutation of a Q or K projection (output features)."""
    n = lin.shape[1]
    order = np.arange(n).reshape(n_heads, n // n_heads // 2, 2).swapaxes(1, 2).reshape(n)
    if isinstance(lin, DenseLinear):
        return DenseLinear(np.ascontiguousarray(lin.weight[:, order]))
    return BlockLinear(
        in_features=lin.in_features,
        out_features=lin.out_features,
        bits=lin.bits,
        block_size=lin.block_size,
        packed=np.ascontiguousarray(lin.packed[order]),
        scales=np.ascontiguousarray(lin.scales[order]),
        correction=None
        if lin.correction is None
        else np.ascontiguousarray(lin.correction[:, order]),
    )


def dequantize_rows(tensor) -> np.ndarray:
    """A GGUF tensor as float32 rows, e.g. the embedding table (vocab, hidden)."""
    import gguf

    values = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)
    return np.asarray(values, dtype=np.float32).reshape(int(tensor.shape[1]), int(tensor.shape[0]))


def weights_from_gguf(path: Path, shape: DecoderShape) -> DecoderWeights:
    """The decoder's weights straight from a llama-architecture GGUF file, blocks kept as is."""
    reader = _reader(path)
    tensors = {t.name: t for t in reader.tensors}

    def get(name: str):
        if name not in tensors:
            raise ValueError(f"{path.name}: tensor {name!r} missing; not a llama GGUF")
        return tensors[name]

    def norm(name: str) -> np.ndarray:
        return np.asarray(get(name).data, dtype=np.float32).reshape(-1).copy()

    def lin(name: str, k: int, n: int) -> Linear:
        result = block_linear(get(name))
        if result.shape != (k, n):
            raise ValueError(f"{path.name}: {name} has shape {result.shape}, expected {(k, n)}")
        return result

    h, d = shape.hidden_size, shape.head_dim
    q_out, kv_out = shape.num_heads * d, shape.num_kv_heads * d
    inter = shape.intermediate_size
    embed = get("token_embd.weight")
    weights = DecoderWeights(embed_tokens=dequantize_rows(embed))
    for i in range(shape.num_layers):
        p = f"blk.{i}."
        q = unpermute_rows(lin(p + "attn_q.weight", h, q_out), shape.num_heads)
        k = unpermute_rows(lin(p + "attn_k.weight", h, kv_out), shape.num_kv_heads)
        v = lin(p + "attn_v.weight", h, kv_out)
        weights.layers.append(
            LayerWeights(
                attn_norm=norm(p + "attn_norm.weight"),
                qkv=concat_outputs([q, k, v]),
                o_proj=lin(p + "attn_output.weight", q_out, h),
                mlp_norm=norm(p + "ffn_norm.weight"),
                gate_proj=lin(p + "ffn_gate.weight", h, inter),
                up_proj=lin(p + "ffn_up.weight", h, inter),
                down_proj=lin(p + "ffn_down.weight", inter, h),
            )
        )
    weights.final_norm = norm("output_norm.weight")
    head = tensors.get("output.weight", embed)
    weights.lm_head = block_linear(head)
    if weights.lm_head.shape != (h, shape.vocab_size):
        raise ValueError(f"{path.name}: LM head shape {weights.lm_head.shape} does not match")
    return weights
