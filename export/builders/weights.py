"""The weights a fused decoder is built from, and the accounting of where each came from.

A projection is a :class:`DenseLinear` (fp32) or a :class:`BlockLinear` (``MatMulNBits``
codes and scales, from a GGUF file's own blocks or from symmetric re-quantization); both may
carry a bias. :class:`SourceTensors` hands a builder the source's tensors by their Hugging
Face names and records which were taken, so that a tensor no builder placed is an error rather
than a weight silently dropped (as Qwen2's q/k/v biases once were).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


@dataclass
class DenseLinear:
    """``y = x @ weight + bias`` with a float32 ``weight`` of shape (K, N)."""

    weight: np.ndarray
    bias: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape  # type: ignore[return-value]


@dataclass
class BlockLinear:
    """A ``MatMulNBits`` weight: (N, K/block, block·bits/8) packed codes and (N, K/block) scales.

    Codes use the operator's implicit zero point 2^(bits-1). ``correction`` (K/block, N), when
    present, is multiplied by the per-block sums of the input and added to the output; it
    carries an affine offset per block (GGUF Q4_1's ``m``) exactly, which the operator's float
    zero points could also express but only through a much slower kernel.
    """

    in_features: int
    out_features: int
    bits: int
    block_size: int
    packed: np.ndarray
    scales: np.ndarray
    correction: np.ndarray | None = None
    bias: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.in_features, self.out_features)


Linear = DenseLinear | BlockLinear
#: What a source holds under a name: a raw tensor in Hugging Face layout (a projection is
#: (out, in) rows), or a projection already in the fused graph's (K, N) form (GGUF blocks).
Tensor = np.ndarray | DenseLinear | BlockLinear


@dataclass
class LayerWeights:
    """One decoder layer. ``qkv`` is Q, K and V concatenated along the output features.

    Norm weights are the effective RMSNorm multipliers (Gemma's ``1 + w`` already added);
    ``None`` means the family has no such norm. The pre-norms feed attention and the MLP, the
    post-norms apply to their outputs before the residual add (Gemma 2/3, OLMo 2).
    """

    qkv: Linear
    o_proj: Linear
    gate_proj: Linear
    up_proj: Linear
    down_proj: Linear
    attn_norm: np.ndarray | None = None
    mlp_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None
    post_mlp_norm: np.ndarray | None = None
    q_norm: np.ndarray | None = None
    k_norm: np.ndarray | None = None


@dataclass
class DecoderWeights:
    """Everything the fused graph needs, in Hugging Face layout (rotate-half rotary)."""

    embed_tokens: np.ndarray
    layers: list[LayerWeights] = field(default_factory=list)
    final_norm: np.ndarray | None = None
    lm_head: Linear | None = None


# --------------------------------------------------------------------------------------
# Projections
# --------------------------------------------------------------------------------------


def pack_codes(codes: np.ndarray, bits: int, block_size: int) -> np.ndarray:
    """Pack unsigned codes (N, K) into MatMulNBits' (N, K/block, block·bits/8) layout.

    For 4 bits, element 2i of a block sits in the low nibble of byte i, element 2i+1 in the
    high nibble. K must be a multiple of ``block_size``.
    """
    n, k = codes.shape
    blocks = codes.reshape(n, k // block_size, block_size).astype(np.uint8)
    if bits == 8:
        return np.ascontiguousarray(blocks)
    if bits == 4:
        return np.ascontiguousarray(blocks[..., 0::2] | (blocks[..., 1::2] << 4))
    raise ValueError(f"unsupported bit width {bits}")


def quantize_symmetric(lin: Linear | np.ndarray, bits: int = 8, block_size: int = 32) -> Linear:
    """Symmetric block quantization of a dense (K, N) weight for ``MatMulNBits``.

    Each block of ``block_size`` input features per output gets one scale, absmax / (2^(b-1)-1),
    and codes offset by the operator's implicit zero point 2^(bits-1). K is zero-padded to a
    whole number of blocks, as the operator expects. A block weight is returned as it is.
    """
    if isinstance(lin, BlockLinear):
        return lin
    dense = lin if isinstance(lin, DenseLinear) else DenseLinear(lin)
    k, n = dense.shape
    pad = (-k) % block_size
    w = np.ascontiguousarray(dense.weight.T, dtype=np.float32)
    if pad:
        w = np.pad(w, ((0, 0), (0, pad)))
    blocks = w.reshape(n, -1, block_size)
    qmax = (1 << (bits - 1)) - 1
    absmax = np.abs(blocks).max(axis=-1)
    scales = (absmax / qmax).astype(np.float32)
    safe = np.where(scales == 0, 1.0, scales)[..., None]
    q = np.clip(np.rint(blocks / safe), -qmax, qmax).astype(np.int32) + (1 << (bits - 1))
    return BlockLinear(
        in_features=k,
        out_features=n,
        bits=bits,
        block_size=block_size,
        packed=pack_codes(q.reshape(n, -1), bits, block_size),
        scales=scales,
        bias=dense.bias,
    )


def _biases(parts: list[Linear]) -> np.ndarray | None:
    """The parts' biases concatenated, zeros for a part without one; None if none has one."""
    if all(p.bias is None for p in parts):
        return None
    return np.concatenate([
        p.bias if p.bias is not None else np.zeros(p.shape[1], np.float32) for p in parts
    ]).astype(np.float32)


def _unpack(lin: BlockLinear) -> np.ndarray:
    """MatMulNBits' packed codes → (N, K) uint8 codes."""
    if lin.bits == 8:
        return lin.packed.reshape(lin.out_features, -1)
    low, high = lin.packed & 0x0F, lin.packed >> 4
    return np.stack([low, high], axis=-1).reshape(lin.out_features, -1)


def _widen(lin: BlockLinear, bits: int, block: int, correction: bool) -> BlockLinear:
    """The same weights with wider codes, smaller blocks, or an all-zero correction: exact."""
    codes = _unpack(lin).astype(np.int16)
    if bits != lin.bits:
        codes = codes + ((1 << (bits - 1)) - (1 << (lin.bits - 1)))
    split = lin.block_size // block
    offsets = lin.correction
    if offsets is None and correction:
        offsets = np.zeros((lin.in_features // lin.block_size, lin.out_features), np.float32)
    return BlockLinear(
        in_features=lin.in_features,
        out_features=lin.out_features,
        bits=bits,
        block_size=block,
        packed=pack_codes(codes, bits, block),
        scales=np.repeat(lin.scales, split, axis=1),
        correction=None if offsets is None else np.repeat(offsets, split, axis=0),
    )


def match_formats(parts: list[Linear]) -> list[Linear]:
    """Block weights that share an input (Q, K and V; gate and up) in one common format, so
    they can be concatenated: a file may store them in different types (Q4_K_M keeps some V
    projections in Q6_K). The widest bits, smallest block and any correction win; nothing is
    rounded. Dense parts, or a mix of dense and block parts, are returned unchanged."""
    blocks = [p for p in parts if isinstance(p, BlockLinear)]
    if len(blocks) != len(parts):
        return parts
    bits = max(p.bits for p in blocks)
    block = min(p.block_size for p in blocks)
    correction = any(p.correction is not None for p in blocks)
    return [
        p if (p.bits, p.block_size, p.correction is not None) == (bits, block, correction)
        else _widen(p, bits, block, correction)
        for p in blocks
    ]


def concat_outputs(parts: list[Linear]) -> Linear:
    """Concatenate linears that share an input along their output features (Q, K, V); block
    weights of different formats are first brought to a common one (:func:`match_formats`)."""
    parts = match_formats(parts)
    if all(isinstance(p, DenseLinear) for p in parts):
        return DenseLinear(np.concatenate([p.weight for p in parts], axis=1), _biases(parts))
    if not all(isinstance(p, BlockLinear) for p in parts):
        raise ValueError("cannot concatenate dense and block-quantized weights")
    first = parts[0]
    if any(
        (p.bits, p.block_size, p.in_features) != (first.bits, first.block_size, first.in_features)
        or (p.correction is None) != (first.correction is None)
        for p in parts
    ):
        raise ValueError("cannot concatenate block weights of different formats")
    return BlockLinear(
        in_features=first.in_features,
        out_features=sum(p.out_features for p in parts),
        bits=first.bits,
        block_size=first.block_size,
        packed=np.concatenate([p.packed for p in parts], axis=0),
        scales=np.concatenate([p.scales for p in parts], axis=0),
        correction=None
        if first.correction is None
        else np.concatenate([p.correction for p in parts], axis=1),
        bias=_biases(parts),
    )


def split_outputs(lin: Linear, sizes: list[int]) -> list[Linear]:
    """Split a linear along its output features (Phi-3's packed qkv_proj and gate_up_proj)."""
    bounds = np.cumsum([0, *sizes])
    if bounds[-1] != lin.shape[1]:
        raise ValueError(f"cannot split {lin.shape[1]} output features into {sizes}")
    parts: list[Linear] = []
    for start, stop in itertools.pairwise(bounds):
        bias = None if lin.bias is None else lin.bias[start:stop]
        if isinstance(lin, DenseLinear):
            parts.append(DenseLinear(np.ascontiguousarray(lin.weight[:, start:stop]), bias))
        else:
            parts.append(replace(
                lin,
                out_features=int(stop - start),
                packed=lin.packed[start:stop],
                scales=lin.scales[start:stop],
                correction=None if lin.correction is None else lin.correction[:, start:stop],
                bias=bias,
            ))
    return parts


def scale_outputs(lin: Linear, factor: float) -> Linear:
    """``factor · (x @ W + b)`` as one linear (Granite's residual and logit multipliers)."""
    if factor == 1.0:
        return lin
    bias = None if lin.bias is None else (lin.bias * factor).astype(np.float32)
    if isinstance(lin, DenseLinear):
        return DenseLinear((lin.weight * factor).astype(np.float32), bias)
    return replace(
        lin,
        scales=(lin.scales * factor).astype(np.float32),
        correction=None if lin.correction is None else (lin.correction * factor).astype(
            np.float32),
        bias=bias,
    )


# --------------------------------------------------------------------------------------
# Source tensors
# --------------------------------------------------------------------------------------


class UnplacedTensorError(ValueError):
    """A source tensor the builder could not place: exporting without it would change the
    model, so the fused layout refuses it."""


class SourceTensors:
    """A name → tensor mapping read lazily, one tensor at a time, that records every name the
    builder takes or ignores (with a reason).

    ``loaders`` maps each name to a function returning the tensor, so a large model is never
    held whole: the builder quantizes each projection as soon as it is taken.
    """

    def __init__(self, loaders: Mapping[str, Callable[[], Tensor]], origin: str) -> None:
        self._loaders = dict(loaders)
        self.origin = origin
        self._taken: set[str] = set()
        self.ignored: dict[str, str] = {}

    @classmethod
    def from_arrays(cls, tensors: Mapping[str, Tensor], origin: str = "tensors") -> SourceTensors:
        return cls({name: (lambda t=t: t) for name, t in tensors.items()}, origin)

    @classmethod
    def from_safetensors(cls, folder: Path) -> SourceTensors:
        """Every tensor of a Hugging Face folder's ``*.safetensors`` files, read as float32
        when taken (bf16 and fp16 sources included)."""
        from safetensors import safe_open

        loaders: dict[str, Callable[[], Tensor]] = {}
        files = sorted(Path(folder).glob("*.safetensors"))
        if not files:
            raise ValueError(f"{folder} has no *.safetensors weights")
        for path in files:
            with safe_open(str(path), framework="pt") as handle:
                names = list(handle.keys())
            for name in names:
                loaders[name] = lambda p=path, n=name: _read_safetensor(p, n)
        return cls(loaders, str(folder))

    def names(self) -> list[str]:
        return sorted(self._loaders)

    def __contains__(self, name: str) -> bool:
        return name in self._loaders

    def take(self, name: str) -> Tensor:
        """The tensor called ``name``, marked as placed."""
        if name not in self._loaders:
            raise UnplacedTensorError(f"{self.origin}: tensor {name!r} is missing")
        if name in self._taken:
            raise UnplacedTensorError(f"{self.origin}: tensor {name!r} placed twice")
        self._taken.add(name)
        return self._loaders[name]()

    def take_optional(self, name: str) -> Tensor | None:
        return self.take(name) if name in self._loaders else None

    def ignore(self, pattern: str, reason: str) -> None:
        """Mark every untaken name matching the regular expression as deliberately unused."""
        for name in self._loaders:
            if name not in self._taken and re.fullmatch(pattern, name):
                self.ignored[name] = reason

    def check_all_placed(self) -> None:
        """Refuse if any tensor was neither taken nor ignored."""
        left = [n for n in sorted(self._loaders) if n not in self._taken and n not in self.ignored]
        if left:
            shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            raise UnplacedTensorError(
                f"{self.origin}: the fused layout has no place for {shown}; exporting without "
                f"{'it' if len(left) == 1 else 'them'} would change the model"
            )

    def taken(self) -> Iterable[str]:
        return sorted(self._taken)


def _read_safetensor(path: Path, name: str) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name).float().numpy()
