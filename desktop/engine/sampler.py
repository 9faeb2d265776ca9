"""The sampler, as pure functions over a 1-D array of logits.

Each step is a function of its inputs only (no hidden state, the RNG is passed in), so each can
be tested alone against hand-computed distributions. The order follows llama.cpp and
transformers: repetition penalty, top-k, temperature, top-p, min-p, then a draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from desktop.engine.settings import SamplingSettings


def apply_repetition_penalty(
    logits: np.ndarray, recent_ids: Sequence[int], penalty: float
) -> np.ndarray:
    """Make recently seen tokens less likely (CTRL paper): divide positive logits by
    ``penalty`` and multiply negative ones, once per distinct token."""
    if penalty == 1.0 or len(recent_ids) == 0:
        return logits
    out = logits.copy()
    ids = np.unique(np.asarray(recent_ids, dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < out.shape[0])]
    values = out[ids]
    out[ids] = np.where(values > 0, values / penalty, values * penalty)
    return out


def top_k_candidates(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest logits and their token ids, sorted by decreasing logit; ``k`` 0 (top-k
    off) or at least the vocabulary's size means every token.

    Everything after this works on the slice, not the whole vocabulary."""
    if k <= 0 or k >= logits.shape[0]:
        ids = np.arange(logits.shape[0])
    else:
        ids = np.argpartition(logits, -k)[-k:]
    order = np.argsort(-logits[ids], kind="stable")
    ids = ids[order]
    return logits[ids], ids


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from logits at a temperature > 0, computed in float64 for stability."""
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max()
    exp = np.exp(scaled)
    return exp / exp.sum()


def top_p_keep(sorted_probs: np.ndarray, top_p: float) -> int:
    """How many of the (descending) probabilities form the smallest set whose mass is ≥ top_p."""
    if top_p >= 1.0:
        return sorted_probs.shape[0]
    cumulative = np.cumsum(sorted_probs)
    return int(min(np.searchsorted(cumulative, top_p - 1e-12) + 1, sorted_probs.shape[0]))


def min_p_keep(sorted_probs: np.ndarray, min_p: float) -> int:
    """How many of the (descending) probabilities are at least ``min_p`` times the largest."""
    if min_p <= 0.0:
        return sorted_probs.shape[0]
    return max(1, int(np.count_nonzero(sorted_probs >= min_p * sorted_probs[0])))


def candidate_distribution(
    logits: np.ndarray, settings: SamplingSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and their renormalised probabilities after top-k, temperature, top-p, min-p."""
    if 0 < settings.top_k < logits.shape[0]:
        top_logits, ids = top_k_candidates(logits, settings.top_k)
        probs = softmax(top_logits, settings.temperature)
    else:
        ids, probs = _whole_vocabulary(logits, settings)
    keep = min(top_p_keep(probs, settings.top_p), min_p_keep(probs, settings.min_p))
    probs = probs[:keep]
    return ids[:keep], probs / probs.sum()


def _whole_vocabulary(logits: np.ndarray, settings: SamplingSettings
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Every token a candidate (top-k off): the same ids and probabilities, sorted, as
    :func:`top_k_candidates` of the whole vocabulary, but only the tokens min-p keeps are
    sorted. They are the most likely ones, and what follows keeps at most that many, so
    sorting the other 99.9 % of a large vocabulary at every token would only cost time."""
    probs = softmax(logits, settings.temperature)
    ids = (np.flatnonzero(probs >= settings.min_p * probs.max()) if settings.min_p > 0.0
           else np.arange(logits.shape[0]))
    ids = ids[np.argsort(-logits[ids], kind="stable")]
    return ids, probs[ids]


def select_token(
    logits: np.ndarray,
    settings: SamplingSettings,
    rng: np.random.Generator,
    recent_ids: Sequence[int] = (),
) -> int:
    """Choose the next token. Temperature 0 is argmax; otherwise one draw from ``rng``."""
    logits = apply_repetition_penalty(logits, recent_ids, settings.repetition_penalty)
    if settings.greedy:
        return int(np.argmax(logits))
    ids, probs = candidate_distribution(logits, settings)
    return int(ids[rng.choice(probs.shape[0], p=probs)])
