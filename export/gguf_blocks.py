"""Carry a GGUF file's quantized blocks into the fused graph without re-quantizing.

Re-quantizing weights that are already 4-bit loses quality (perplexity 23.1 → 29.9 on the
default model); mapping the GGUF blocks onto ``MatMulNBits`` keeps them exact. Every linear
block type llama.cpp writes decodes to integer codes ``q`` with a float scale ``s`` and, for
the affine types, an offset ``m`` per block of 32 or 16 weights: ``w = s·q + m``.
``MatMulNBits`` holds ``s·(c − z)`` with codes ``c = q + t`` and the operator's implicit zero
point ``z = 2^(bits−1)``; whatever remains, ``s·(z − t) + m`` per block, is carried as the
block-sum correction (``BlockLinear.correction``: the input summed over each block times a
(K/block, N) matrix), which the operator's float zero points could also express but only
through a kernel about 30× slower on CPU. The result equals gguf's own dequantization up to
float rounding:

* 4-bit codes (``Q4_0``, ``Q4_1``, ``Q4_K``, ``Q3_K``, ``Q2_K``) map onto bits 4 exactly.
* 5-, 6- and 8-bit codes and the non-linear 4-bit grids (``Q5_0``, ``Q5_1``, ``Q5_K``,
  ``Q6_K``, ``Q8_0``, ``IQ4_NL``, ``IQ4_XS``) do not fit 4 bits; they map onto bits 8
  exactly (bigger than the source, never less faithful).
* K-quant super-blocks of 256 fold their 6- or 8-bit sub-block scales (and mins) into one fp32
  scale (and offset) per sub-block of 32 (``Q4_K``, ``Q5_K``, ``IQ4_XS``) or 16 (``Q2_K``,
  ``Q3_K``, ``Q6_K``); the products of an fp16 and a small integer are exact in fp32.
* Other types (the ``IQ1``/``IQ2``/``IQ3`` lattices, ternary types) have no linear form: they
  are dequantized and re-quantized to 8 bits, and :func:`carry_plan` says so.

llama.cpp stores Q and K projections with their rows permuted for its interleaved rotary
embedding; the rows are put back in Hugging Face order so the fused graph, its KV cache and
the Optimum export it is checked against all agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.builders.base import DecoderShape
from export.builders.weights import (
    BlockLinear,
    DecoderWeights,
    DenseLinear,
    Linear,
    SourceTensors,
    Tensor,
    UnplacedTensorError,
    pack_codes,
    quantize_symmetric,
)
from export.gguf_header import GgufFile, GgufTensor

QK = 32  # elements per block in Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL
QK_K = 256  # elements per super-block of the k-quants and IQ4_XS
# IQ4_NL and IQ4_XS index this non-linear grid with 4-bit codes.
IQ4_GRID = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                    dtype=np.int16)
EXACT_4BIT = "exact 4-bit"
EXACT_8BIT = "exact 8-bit"
DENSE = "dense fp32"
REQUANTIZED = "re-quantized 8-bit"


def _open(path: Path) -> GgufFile:
    """The file's header and tensor table (read once; tensors are read when taken)."""
    return GgufFile(path)


# --------------------------------------------------------------------------------------
# Decoding: raw blocks (rows, blocks, bytes) → codes, scales and offsets
# --------------------------------------------------------------------------------------


@dataclass
class _Decoded:
    """``w = scale·q + offset``, one scale (and offset) per block of weights along K."""

    q: np.ndarray  # (N, K) int16
    scale: np.ndarray  # (N, K/block) float32
    offset: np.ndarray | None = None  # (N, K/block) float32


def _f16(raw: np.ndarray) -> np.ndarray:
    """Little-endian fp16 fields (…, 2) bytes → float32 (…)."""
    return np.ascontiguousarray(raw).view(np.float16)[..., 0].astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(…, n) bytes → (…, 2n): all low nibbles, then all high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _rows(q: np.ndarray) -> np.ndarray:
    """(N, blocks, elements) → (N, K) int16."""
    return q.reshape(q.shape[0], -1).astype(np.int16)


def _per_block(x: np.ndarray) -> np.ndarray:
    """(N, super-blocks, sub-blocks) → (N, K/block) float32."""
    return x.reshape(x.shape[0], -1).astype(np.float32)


def _q4_0(b: np.ndarray) -> _Decoded:
    q = _nibbles(b[..., 2:]).astype(np.int16) - 8
    return _Decoded(_rows(q), _f16(b[..., 0:2]))


def _q4_1(b: np.ndarray) -> _Decoded:
    return _Decoded(_rows(_nibbles(b[..., 4:])), _f16(b[..., 0:2]), _f16(b[..., 2:4]))


def _high_bits(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1's 32 fifth bits, packed little-endian in 4 bytes → (…, 32) of 0/1."""
    return np.unpackbits(qh, axis=-1, bitorder="little")


def _q5_0(b: np.ndarray) -> _Decoded:
    q = (_nibbles(b[..., 6:]) | (_high_bits(b[..., 2:6]) << 4)).astype(np.int16) - 16
    return _Decoded(_rows(q), _f16(b[..., 0:2]))


def _q5_1(b: np.ndarray) -> _Decoded:
    q = _nibbles(b[..., 8:]) | (_high_bits(b[..., 4:8]) << 4)
    return _Decoded(_rows(q), _f16(b[..., 0:2]), _f16(b[..., 2:4]))


def _q8_0(b: np.ndarray) -> _Decoded:
    q = np.ascontiguousarray(b[..., 2:]).view(np.int8)
    return _Decoded(_rows(q), _f16(b[..., 0:2]))


def _iq4_nl(b: np.ndarray) -> _Decoded:
    q = IQ4_GRID[_nibbles(b[..., 2:])]
    return _Decoded(_rows(q), _f16(b[..., 0:2]))


def _k_scales_mins(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K's 12 bytes → eight 6-bit scales and eight 6-bit mins (…, 8) each."""
    low, mid, top = s[..., 0:4], s[..., 4:8], s[..., 8:12]
    scales = np.concatenate([low & 63, (top & 15) | ((low >> 6) << 4)], axis=-1)
    mins = np.concatenate([mid & 63, (top >> 4) | ((mid >> 6) << 4)], axis=-1)
    return scales, mins


def _k_low_nibbles(qs: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K's 128 bytes → 256 4-bit codes: each 32 bytes hold 64 weights, the first 32
    in the low nibbles and the next 32 in the high ones."""
    chunks = qs.reshape(*qs.shape[:-1], 4, 32)
    return np.stack([chunks & 0x0F, chunks >> 4], axis=-2).reshape(*qs.shape[:-1], QK_K)


def _q4_k(b: np.ndarray) -> _Decoded:
    d, dmin = _f16(b[..., 0:2])[..., None], _f16(b[..., 2:4])[..., None]
    scales, mins = _k_scales_mins(b[..., 4:16])
    q = _k_low_nibbles(b[..., 16:])
    return _Decoded(_rows(q), _per_block(d * scales), _per_block(-dmin * mins))


def _q5_k(b: np.ndarray) -> _Decoded:
    d, dmin = _f16(b[..., 0:2])[..., None], _f16(b[..., 2:4])[..., None]
    scales, mins = _k_scales_mins(b[..., 4:16])
    qh = b[..., 16:48]  # bit j of byte l: the fifth bit of weight l of sub-block j
    high = (qh[..., None, :] >> np.arange(8, dtype=np.uint8)[:, None]) & 1
    q = _k_low_nibbles(b[..., 48:]) | (high.reshape(*qh.shape[:-1], QK_K) << 4)
    return _Decoded(_rows(q), _per_block(d * scales), _per_block(-dmin * mins))


def _two_bit_groups(qs: np.ndarray) -> np.ndarray:
    """Q2_K/Q3_K/Q6_K's 2-bit fields: each 32 bytes hold 128 weights, shifted out 2 bits at a
    time (bits 0-1 for the first 32, 2-3 for the next …) → (…, 4·len) codes."""
    groups = qs.reshape(*qs.shape[:-1], -1, 1, 32) >> np.array([0, 2, 4, 6], np.uint8)[:, None]
    return (groups & 3).reshape(*qs.shape[:-1], -1)


def _q2_k(b: np.ndarray) -> _Decoded:
    s = b[..., 0:16]
    d, dmin = _f16(b[..., 80:82])[..., None], _f16(b[..., 82:84])[..., None]
    q = _two_bit_groups(b[..., 16:80])
    return _Decoded(_rows(q), _per_block(d * (s & 15)), _per_block(-dmin * (s >> 4)))


def _q3_k(b: np.ndarray) -> _Decoded:
    hmask, qs, s, d = b[..., 0:32], b[..., 32:96], b[..., 96:108], _f16(b[..., 108:110])
    low = _two_bit_groups(qs).astype(np.int16)
    high = (hmask[..., None, :] >> np.arange(8, dtype=np.uint8)[:, None]) & 1
    q = low - 4 * (1 - high.reshape(low.shape).astype(np.int16))
    j = np.arange(16)
    low4 = (s[..., j % 8] >> (4 * (j // 8)).astype(np.uint8)) & 15
    high2 = (s[..., 8 + j % 4] >> (2 * (j // 4)).astype(np.uint8)) & 3
    scales = (low4 | (high2 << 4)).astype(np.int16) - 32
    return _Decoded(_rows(q), _per_block(d[..., None] * scales))


def _q6_k(b: np.ndarray) -> _Decoded:
    ql, qh = b[..., 0:128], b[..., 128:192]
    scales = np.ascontiguousarray(b[..., 192:208]).view(np.int8).astype(np.float32)
    d = _f16(b[..., 208:210])[..., None]
    halves = ql.reshape(*ql.shape[:-1], 2, 64)
    low = np.concatenate([halves & 0x0F, halves >> 4], axis=-1).reshape(*ql.shape[:-1], QK_K)
    q = (low | (_two_bit_groups(qh) << 4)).astype(np.int16) - 32
    return _Decoded(_rows(q), _per_block(d * scales))


def _iq4_xs(b: np.ndarray) -> _Decoded:
    d = _f16(b[..., 0:2])[..., None]
    high = np.ascontiguousarray(b[..., 2:4]).view(np.uint16)  # (…, 1)
    j = np.arange(8)
    scale_low = (b[..., 4 + j // 2] >> (4 * (j % 2)).astype(np.uint8)) & 15
    scale_high = ((high >> (2 * j).astype(np.uint16)) & 3).astype(np.uint8)
    scales = (scale_low | (scale_high << 4)).astype(np.int16) - 32
    q = IQ4_GRID[_nibbles(b[..., 8:].reshape(*b.shape[:-1], 8, 16))]
    return _Decoded(_rows(q), _per_block(d * scales))


@dataclass(frozen=True)
class _Format:
    """A linear GGUF block type: its decoder, bytes per GGUF block, the weights sharing one
    scale, and the range of its integer codes."""

    decode: Callable[[np.ndarray], _Decoded]
    nbytes: int
    block: int
    lo: int
    hi: int

    @property
    def bits(self) -> int:
        """The narrowest MatMulNBits width (4 or 8) that holds every code."""
        return 4 if self.hi - self.lo <= 15 else 8


def _formats() -> dict[Any, _Format]:
    """The GGUF block types with an exact MatMulNBits form."""
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as T

    table = {
        T.Q4_0: (_q4_0, QK, -8, 7),
        T.Q4_1: (_q4_1, QK, 0, 15),
        T.Q5_0: (_q5_0, QK, -16, 15),
        T.Q5_1: (_q5_1, QK, 0, 31),
        T.Q8_0: (_q8_0, QK, -128, 127),
        T.IQ4_NL: (_iq4_nl, QK, -127, 113),
        T.Q2_K: (_q2_k, 16, 0, 3),
        T.Q3_K: (_q3_k, 16, -4, 3),
        T.Q4_K: (_q4_k, QK, 0, 15),
        T.Q5_K: (_q5_k, QK, 0, 31),
        T.Q6_K: (_q6_k, 16, -32, 31),
        T.IQ4_XS: (_iq4_xs, QK, -127, 113),
    }
    return {kind: _Format(fn, GGML_QUANT_SIZES[kind][1], block, lo, hi)
            for kind, (fn, block, lo, hi) in table.items()}


def _dense_types() -> frozenset[Any]:
    from gguf import GGMLQuantizationType as T

    return frozenset({T.F32, T.F16, T.BF16})


# --------------------------------------------------------------------------------------
# Mapping onto MatMulNBits
# --------------------------------------------------------------------------------------


def _to_block_linear(dec: _Decoded, fmt: _Format, k: int, n: int) -> BlockLinear:
    """Codes into MatMulNBits' unsigned range around its implicit zero point; what the shift
    leaves over goes into the block-sum correction (omitted when it is zero everywhere)."""
    bits = fmt.bits
    zero = 1 << (bits - 1)
    symmetric = dec.offset is None and -zero <= fmt.lo and fmt.hi < zero
    centre = 0 if symmetric else (fmt.lo + fmt.hi + 1) // 2
    codes = dec.q + (zero - centre)
    correction = None
    if not symmetric:
        rest = dec.scale * np.float32(centre)
        if dec.offset is not None:
            rest = rest + dec.offset
        correction = np.ascontiguousarray(rest.T, dtype=np.float32)
    return BlockLinear(
        in_features=k,
        out_features=n,
        bits=bits,
        block_size=fmt.block,
        packed=pack_codes(codes, bits, fmt.block),
        scales=np.ascontiguousarray(dec.scale, dtype=np.float32),
        correction=correction,
    )


def mapping_of(kind: Any) -> str:
    """How a GGUF tensor type is carried: exact 4-bit, exact 8-bit, dense fp32, or
    re-quantized 8-bit for types without a linear code (the IQ lattices, ternary types)."""
    if kind in _dense_types():
        return DENSE
    fmt = _formats().get(kind)
    if fmt is None:
        return REQUANTIZED
    return EXACT_4BIT if fmt.bits == 4 else EXACT_8BIT


def block_linear(tensor: Any) -> Linear:
    """One GGUF weight (rows = output features) as a linear the fused graph can run: its own
    blocks wherever ``MatMulNBits`` holds them exactly, dense for float tensors, and the
    dequantized weight re-quantized to 8 bits only for types without a linear code."""
    kind = tensor.tensor_type
    k, n = (int(x) for x in tensor.shape[:2])
    if kind in _dense_types():
        return DenseLinear(np.ascontiguousarray(dequantize_rows(tensor).T))
    fmt = _formats().get(kind)
    if fmt is None:
        return quantize_symmetric(np.ascontiguousarray(dequantize_rows(tensor).T), 8, QK)
    blocks = np.asarray(tensor.data, dtype=np.uint8).reshape(n, -1, fmt.nbytes)
    return _to_block_linear(fmt.decode(blocks), fmt, k, n)


def can_carry_blocks(path: Path) -> bool:
    """Whether the fused builders read this GGUF file: its architecture is one whose tensor
    names are mapped below. Every block type is carried (see :func:`mapping_of`); a tensor
    the family's builder cannot place is refused when the weights are read, and the export
    falls back to the Optimum layout with the reason."""
    with _open(path) as file:
        return file.architecture in GGUF_FAMILIES


def carry_plan(path: Path) -> dict[str, dict[str, Any]]:
    """For the manifest: per GGUF type of the file's matrices (the embedding included), how
    many there are and how each is carried; re-quantized tensors are named."""
    plan: dict[str, dict[str, Any]] = {}
    with _open(path) as file:
        tensors = list(file.tensors.values())
    for tensor in tensors:
        if len(tensor.shape) < 2:
            continue
        kind = tensor.tensor_type
        entry = plan.setdefault(kind.name, {"tensors": 0, "carried_as": mapping_of(kind)})
        entry["tensors"] += 1
        if entry["carried_as"] == REQUANTIZED:
            entry.setdefault("names", []).append(tensor.name)
    return plan


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


#: Rows dequantized at a time: the embedding table of a 128k vocabulary is 2 GB in fp32, and
#: gguf's dequantization makes several temporaries of its output's size.
DEQUANTIZE_ROWS = 4096


def dequantize_rows(tensor: GgufTensor, rows: np.ndarray | None = None) -> np.ndarray:
    """A GGUF tensor as float32 rows, e.g. the embedding table (vocab, hidden); only the rows
    numbered in ``rows`` when given. Dequantized a few thousand rows at a time into the
    result, so the peak stays near the result's size."""
    import gguf

    k, n = int(tensor.shape[0]), int(tensor.shape[1]) if len(tensor.shape) > 1 else 1
    row_bytes = tensor.nbytes // n
    wanted = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty((len(wanted), k), np.float32)
    for start in range(0, len(wanted), DEQUANTIZE_ROWS):
        chunk = wanted[start: start + DEQUANTIZE_ROWS]
        if rows is None:  # consecutive: one read
            raw = tensor.file.read(tensor.offset + int(chunk[0]) * row_bytes,
                                   len(chunk) * row_bytes)
        else:
            raw = np.concatenate([tensor.file.read(tensor.offset + int(r) * row_bytes, row_bytes)
                                  for r in chunk])
        raw = raw.reshape(len(chunk), row_bytes)
        dtype = {0: np.float32, 1: np.float16}.get(int(tensor.tensor_type))
        values = raw.view(dtype) if dtype is not None else gguf.quants.dequantize(
            raw, tensor.tensor_type)
        out[start: start + len(chunk)] = np.asarray(values, np.float32).reshape(len(chunk), k)
    return out


# Where llama.cpp's converter puts each Hugging Face tensor of a layer (``blk.N.<gguf>`` ↔
# ``model.layers.N.<hf>``), as gguf-py's TensorNameMap names them; per architecture where the
# families differ.
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_qkv": "self_attn.qkv_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GEMMA_NAMES = {
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_FAMILY_NAMES: dict[str, dict[str, str]] = {
    "llama": {},
    "qwen2": {},
    "qwen3": {},
    "phi3": {"ffn_up": "mlp.gate_up_proj"},
    "gemma2": _GEMMA_NAMES,
    "gemma3": _GEMMA_NAMES,
}
#: GGUF architectures whose tensors the fused builders place (transformers loads these too).
GGUF_FAMILIES = frozenset(_FAMILY_NAMES)
_MODEL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
# llama.cpp's converter interleaves Q and K rows for its rotary kernel only for these.
_PERMUTED = frozenset({"llama"})
# ... and stores Gemma's RMSNorm weights as the multiplier 1 + w.
_NORMS_PLUS_ONE = frozenset({"gemma2", "gemma3"})
_IGNORED = {
    "rope_freqs.weight": "Llama 3 rope factors, recomputed from the config",
    "rope_factors_long.weight": "LongRoPE factors, recomputed from the config",
    "rope_factors_short.weight": "LongRoPE factors, recomputed from the config",
}
_LAYER = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def gguf_tensors(path: Path, shape: DecoderShape, dense: bool = False) -> SourceTensors:
    """A GGUF file's tensors under their Hugging Face names, read when taken: projections as
    their own blocks (Q and K rows put back in Hugging Face order), norms and biases as
    float32, the embedding table dequantized. The LM head of a tied model is the embedding's
    blocks. A tensor without a Hugging Face name is an error, not a skipped weight.

    ``dense``: every projection as gguf-py dequantizes it instead, float32 (out, in) rows as a
    Hugging Face checkpoint holds them (the reference of a large export's gate)."""
    file = _open(path)
    architecture = file.architecture or "?"
    if architecture not in _FAMILY_NAMES:
        raise ValueError(f"{path.name}: GGUF architecture {architecture!r} is not one the fused "
                         f"layout reads ({', '.join(sorted(_FAMILY_NAMES))})")
    names = {**_LAYER_NAMES, **_FAMILY_NAMES[architecture]}
    tensors = file.tensors
    loaders: dict[str, Callable[[], Tensor]] = {}
    unknown = []
    for name, tensor in tensors.items():
        if name in _IGNORED:
            continue
        if name == "token_embd.weight":
            loaders[_MODEL_NAMES[name]] = lambda t=tensor: dequantize_rows(t)
            if "output.weight" not in tensors:
                loaders["lm_head.weight"] = (lambda t=tensor: dequantize_rows(t)) if dense else (
                    lambda t=tensor: block_linear(t))
            continue
        if name in _MODEL_NAMES:
            hf_name = _MODEL_NAMES[name]
            hf_part, kind = hf_name.rsplit(".", 1)
        else:
            match = _LAYER.fullmatch(name)
            if match is None or match.group(2) not in names:
                unknown.append(name)
                continue
            layer, part, kind = match.groups()
            hf_part = names[part]
            hf_name = f"model.layers.{layer}.{hf_part}.{kind}"
        loaders[hf_name] = _loader(tensor, hf_part, kind, architecture, shape, dense)
    if unknown:
        raise UnplacedTensorError(f"{path.name}: no Hugging Face name for GGUF tensor(s) "
                                  f"{', '.join(unknown[:5])}")
    return SourceTensors(loaders, path.name)


def _loader(tensor, hf_part: str, kind: str, architecture: str,
            shape: DecoderShape, dense: bool = False) -> Callable[[], Tensor]:
    """How one GGUF tensor is read: a projection keeps its blocks (or, ``dense``, is
    dequantized to rows), the rest is float32."""
    if kind == "weight" and (hf_part.endswith("_proj") or hf_part == "lm_head"):
        heads = {"self_attn.q_proj": shape.num_heads, "self_attn.k_proj": shape.num_kv_heads}
        permuted = architecture in _PERMUTED and hf_part in heads
        if dense:
            def read_rows() -> np.ndarray:
                rows = dequantize_rows(tensor)
                if not permuted:
                    return rows
                back = unpermute_rows(DenseLinear(rows.T), heads[hf_part])
                return np.ascontiguousarray(back.weight.T)

            return read_rows
        if permuted:
            return lambda: unpermute_rows(block_linear(tensor), heads[hf_part])
        return lambda: block_linear(tensor)
    if kind == "bias" and architecture in _PERMUTED and hf_part in (
            "self_attn.q_proj", "self_attn.k_proj"):
        heads = shape.num_heads if hf_part == "self_attn.q_proj" else shape.num_kv_heads

        def read_bias() -> np.ndarray:
            bias = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
            n = bias.shape[0]
            return bias[np.arange(n).reshape(heads, n // heads // 2, 2).swapaxes(1, 2).reshape(n)]

        return read_bias
    offset = 1.0 if architecture in _NORMS_PLUS_ONE and hf_part.endswith("norm") else 0.0

    def read() -> np.ndarray:
        return np.asarray(tensor.data, dtype=np.float32).reshape(-1) - np.float32(offset)

    return read


def weights_from_gguf(path: Path, shape: DecoderShape) -> DecoderWeights:
    """The decoder's weights straight from a GGUF file, blocks kept as they are, placed by the
    family's fused builder (which accounts for every tensor)."""
    from export.builders import builder_for

    return builder_for(shape).weights_from(gguf_tensors(path, shape))
