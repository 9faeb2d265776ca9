"""Rotary embedding tables for ``GroupQueryAttention``'s cos/sin caches.

``GroupQueryAttention`` rotates the first ``2 · cache columns`` features of every head with
rotate-half pairing (``rotary_interleaved=0``), as transformers does, so every rope variant
the families use reduces to the inverse frequencies and a magnitude factor folded into the
tables. Each formula below follows transformers' ``modeling_rope_utils`` for the same
``rope_type``; the family tests compare the result with transformers end to end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: rope types whose tables do not depend on the sequence length within ``max_length``.
#: ``dynamic`` equals the default rope up to ``max_position_embeddings``, which bounds the
#: fused graph's positions; ``longrope`` uses its short factors up to the original length.
ROPE_TYPES = frozenset({"default", "linear", "llama3", "longrope", "yarn", "dynamic"})


@dataclass(frozen=True)
class Rope:
    """One rotary table: ``theta`` base, ``dim`` rotated features per head, and the family's
    scaling dict (``rope_scaling`` from config.json, ``None`` for the plain formula)."""

    theta: float
    dim: int
    scaling: tuple[tuple[str, object], ...] | None = None
    max_position_embeddings: int = 2048
    original_max_position_embeddings: int | None = None

    @classmethod
    def from_config(cls, config: dict, dim: int, theta: float | None = None,
                    scaling: dict | None = None) -> Rope:
        if scaling is None:
            scaling = config.get("rope_scaling")
        return cls(
            theta=float(theta if theta is not None else config.get("rope_theta", 10000.0)),
            dim=dim,
            scaling=None if not scaling else tuple(sorted(
                (k, tuple(v) if isinstance(v, list) else v) for k, v in scaling.items())),
            max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
            original_max_position_embeddings=config.get("original_max_position_embeddings"),
        )

    @property
    def kind(self) -> str:
        params = dict(self.scaling or ())
        kind = str(params.get("rope_type", params.get("type", "default")))
        return "longrope" if kind == "su" else kind

    def check(self) -> None:
        """Refuse a rope type whose tables the fused graph cannot precompute."""
        if self.kind not in ROPE_TYPES:
            raise ValueError(f"rope scaling {self.kind!r} is not supported by the fused layout")

    def max_length(self, wanted: int) -> int:
        """Positions the tables are faithful for: LongRoPE switches to its long factors past
        the original context length, for every position at once, which a fixed table cannot
        do; the graph then stops at the original length."""
        params = dict(self.scaling or ())
        if self.kind == "longrope" and params.get("long_factor") != params.get("short_factor"):
            original = self.original_max_position_embeddings or self.max_position_embeddings
            return min(wanted, int(original))
        return wanted

    def inverse_frequencies(self) -> tuple[np.ndarray, float]:
        """(dim/2,) inverse frequencies and the factor applied to cos and sin."""
        self.check()
        params = dict(self.scaling or ())
        # float64 frequencies rounded once to float32, as the tables always were
        exponents = np.arange(0, self.dim, 2, dtype=np.int64) / self.dim
        inv_freq = 1.0 / (self.theta ** exponents)
        kind = self.kind
        if kind == "linear":
            return inv_freq / float(params["factor"]), 1.0
        if kind == "llama3":
            return _llama3(inv_freq, params), 1.0
        if kind == "longrope":
            return self._longrope(exponents, params)
        if kind == "yarn":
            return self._yarn(inv_freq, params)
        return inv_freq, 1.0

    def _longrope(self, exponents: np.ndarray, params: dict) -> tuple[np.ndarray, float]:
        original = self.original_max_position_embeddings
        if original:
            factor = self.max_position_embeddings / original
        else:
            original, factor = self.max_position_embeddings, float(params.get("factor", 1.0))
        attention = params.get("attention_factor")
        if attention is None:
            attention = 1.0 if factor <= 1.0 else math.sqrt(
                1 + math.log(factor) / math.log(original))
        short = np.asarray(params["short_factor"], dtype=np.float64)
        return 1.0 / (short * self.theta ** exponents), float(attention)

    def _yarn(self, inv_freq: np.ndarray, params: dict) -> tuple[np.ndarray, float]:
        factor = float(params["factor"])
        original = int(params.get("original_max_position_embeddings")
                       or self.max_position_embeddings)
        attention = params.get("attention_factor")
        if attention is None:
            mscale, mscale_all = params.get("mscale"), params.get("mscale_all_dim")
            if mscale and mscale_all:
                attention = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all)
            else:
                attention = _yarn_mscale(factor)
        beta_fast, beta_slow = float(params.get("beta_fast") or 32), float(
            params.get("beta_slow") or 1)

        def correction_dim(rotations: float) -> float:
            return (self.dim * math.log(original / (rotations * 2 * math.pi))) / (
                2 * math.log(self.theta))

        low, high = correction_dim(beta_fast), correction_dim(beta_slow)
        if params.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, self.dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(self.dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extrapolation = 1 - ramp
        interpolated = inv_freq / factor
        return (interpolated * (1 - extrapolation) + inv_freq * extrapolation), float(attention)

    def tables(self, max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """cos/sin tables (max_length, dim/2) for rotate-half rotary embedding."""
        inv_freq, factor = self.inverse_frequencies()
        freqs = np.outer(np.arange(max_length, dtype=np.float32), inv_freq.astype(np.float32))
        cos = (np.cos(freqs) * factor).astype(np.float32)
        sin = (np.sin(freqs) * factor).astype(np.float32)
        return cos, sin


def _llama3(inv_freq: np.ndarray, params: dict) -> np.ndarray:
    """Llama 3.1's frequency-dependent interpolation: long wavelengths divided by ``factor``,
    short ones kept, a smooth blend between."""
    factor = float(params["factor"])
    low_freq_factor = float(params["low_freq_factor"])
    high_freq_factor = float(params["high_freq_factor"])
    original = float(params["original_max_position_embeddings"])
    low_freq_wavelen = original / low_freq_factor
    high_freq_wavelen = original / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return np.where(medium, smoothed, scaled)


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0
