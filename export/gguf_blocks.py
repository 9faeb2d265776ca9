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

import re
from collections.abc import Callable
from pathlib import Path

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
    (so the ``q4-gguf`` recipe applies), and its architecture is one whose tensors are named
    below."""
    import gguf

    reader = _reader(path)
    field = reader.fields.get("general.architecture")
    architecture = bytes(field.parts[field.data[0]]).decode("utf-8") if field else None
    carried = {gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1,
               gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F16,
               gguf.GGMLQuantizationType.F32}
    return architecture in GGUF_FAMILIES and all(
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


def gguf_tensors(path: Path, shape: DecoderShape) -> SourceTensors:
    """A GGUF file's tensors under their Hugging Face names, read when taken: projections as
    their own blocks (Q and K rows put back in Hugging Face order), norms and biases as
    float32, the embedding table dequantized. The LM head of a tied model is the embedding's
    blocks. A tensor without a Hugging Face name is an error, not a skipped weight."""
    reader = _reader(path)
    field = reader.fields.get("general.architecture")
    architecture = bytes(field.parts[field.data[0]]).decode("utf-8") if field else "?"
    if architecture not in _FAMILY_NAMES:
        raise ValueError(f"{path.name}: GGUF architecture {architecture!r} is not one the fused "
                         f"layout reads ({', '.join(sorted(_FAMILY_NAMES))})")
    names = {**_LAYER_NAMES, **_FAMILY_NAMES[architecture]}
    tensors = {t.name: t for t in reader.tensors}
    loaders: dict[str, Callable[[], Tensor]] = {}
    unknown = []
    for name, tensor in tensors.items():
        if name in _IGNORED:
            continue
        if name == "token_embd.weight":
            loaders[_MODEL_NAMES[name]] = lambda t=tensor: dequantize_rows(t)
            if "output.weight" not in tensors:
                loaders["lm_head.weight"] = lambda t=tensor: block_linear(t)
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
        loaders[hf_name] = _loader(tensor, hf_part, kind, architecture, shape)
    if unknown:
        raise UnplacedTensorError(f"{path.name}: no Hugging Face name for GGUF tensor(s) "
                                  f"{', '.join(unknown[:5])}")
    return SourceTensors(loaders, path.name)


def _loader(tensor, hf_part: str, kind: str, architecture: str,
            shape: DecoderShape) -> Callable[[], Tensor]:
    """How one GGUF tensor is read: a projection keeps its blocks, the rest is float32."""
    if kind == "weight" and (hf_part.endswith("_proj") or hf_part == "lm_head"):
        heads = {"self_attn.q_proj": shape.num_heads, "self_attn.k_proj": shape.num_kv_heads}
        if architecture in _PERMUTED and hf_part in heads:
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
