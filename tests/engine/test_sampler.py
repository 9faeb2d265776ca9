"""Each sampler step against hand-computed distributions, plus invariants (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from desktop.engine.sampler import (
    apply_repetition_penalty,
    candidate_distribution,
    min_p_keep,
    select_token,
    softmax,
    top_k_candidates,
    top_p_keep,
)
from desktop.engine.settings import SamplingSettings

finite_logits = arrays(np.float32, st.integers(2, 64),
                       elements=st.floats(-30, 30, width=32, allow_nan=False))


def test_softmax_matches_hand_computation():
    probs = softmax(np.array([0.0, np.log(3.0)], dtype=np.float32))
    assert probs == pytest.approx([0.25, 0.75])


def test_temperature_sharpens_and_flattens():
    logits = np.array([1.0, 2.0], dtype=np.float32)
    # p(1) = e^(2/T) / (e^(1/T) + e^(2/T)) = 1 / (1 + e^(-1/T))
    assert softmax(logits, 0.5)[1] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert softmax(logits, 2.0)[1] == pytest.approx(1 / (1 + np.exp(-0.5)))


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    logits = np.array([2.0, -2.0, 1.0], dtype=np.float32)
    out = apply_repetition_penalty(logits, [0, 1, 1], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0]
    assert logits.tolist() == [2.0, -2.0, 1.0]  # pure: input untouched


def test_top_k_keeps_the_k_largest_in_order():
    values, ids = top_k_candidates(np.array([0.1, 5.0, 3.0, 4.0], dtype=np.float32), 2)
    assert ids.tolist() == [1, 3]
    assert values.tolist() == [5.0, 4.0]


def test_top_p_keeps_smallest_set_reaching_p():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    assert top_p_keep(probs, 0.5) == 1
    assert top_p_keep(probs, 0.6) == 2
    assert top_p_keep(probs, 0.8) == 2
    assert top_p_keep(probs, 0.81) == 3
    assert top_p_keep(probs, 1.0) == 4


def test_min_p_keeps_tokens_above_fraction_of_best():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    assert min_p_keep(probs, 0.2) == 3  # threshold 0.1
    assert min_p_keep(probs, 0.0) == 4
    assert min_p_keep(probs, 0.99) == 1


def test_candidate_distribution_renormalises():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    ids, probs = candidate_distribution(
        logits, SamplingSettings(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0))
    assert ids.tolist() == [0, 1, 2]
    assert probs == pytest.approx([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95])


def test_seeded_draws_are_reproducible_and_seeds_differ():
    logits = np.zeros(1000, dtype=np.float32)
    s = SamplingSettings(temperature=1.0, top_k=1000, top_p=1.0, min_p=0.0)

    def draws(seed):
        rng = np.random.default_rng(seed)
        return [select_token(logits, s, rng) for _ in range(20)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


@settings(max_examples=200, deadline=None)
@given(finite_logits)
def test_greedy_is_argmax(logits):
    greedy = SamplingSettings(temperature=0.0, repetition_penalty=1.0)
    assert select_token(logits, greedy, np.random.default_rng(0)) == int(np.argmax(logits))


@settings(max_examples=200, deadline=None)
@given(finite_logits, st.integers(1, 80), st.floats(0.01, 1.0), st.floats(0.0, 0.99),
       st.floats(0.05, 5.0))
def test_distribution_invariants(logits, top_k, top_p, min_p, temperature):
    s = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    ids, probs = candidate_distribution(logits, s)
    assert probs.sum() == pytest.approx(1.0)
    assert (probs >= 0).all()
    assert 1 <= len(ids) <= min(top_k, len(logits))
    assert len(set(ids.tolist())) == len(ids)
    # The most likely token always survives every filter.
    assert int(np.argmax(logits)) in ids.tolist() or logits[ids[0]] == logits.max()


@settings(max_examples=300, deadline=None)
@given(finite_logits, st.sampled_from([0, 64, 1_000_000]), st.floats(0.01, 1.0),
       st.floats(0.0, 0.99), st.floats(0.05, 5.0))
def test_top_k_off_keeps_what_sorting_the_whole_vocabulary_keeps(logits, top_k, top_p, min_p,
                                                                 temperature):
    """top_k 0 (off) or ≥ the vocabulary sorts only what min-p keeps; the ids and
    probabilities are those of sorting every token first."""
    s = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    ids, probs = candidate_distribution(logits, s)
    every_logit, every_id = top_k_candidates(logits, 0)
    assert sorted(every_id.tolist()) == list(range(len(logits)))
    every_prob = softmax(every_logit, temperature)
    keep = min(top_p_keep(every_prob, top_p), min_p_keep(every_prob, min_p))
    assert ids.tolist() == every_id[:keep].tolist()
    np.testing.assert_allclose(probs, every_prob[:keep] / every_prob[:keep].sum(), rtol=1e-9)


def test_top_k_off_samples_outside_the_default_forty():
    """With top-k off and nothing else filtering, a token ranked below 40 can be drawn."""
    logits = np.zeros(100, dtype=np.float32)
    logits[:40] = 0.01  # the forty most likely barely ahead of the other sixty
    off = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    rng = np.random.default_rng(0)
    drawn = {select_token(logits, off, rng) for _ in range(200)}
    assert drawn & set(range(40, 100))
    forty = off.with_changes(top_k=40)
    assert {select_token(logits, forty, rng) for _ in range(200)} <= set(range(40))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.001, 1.0), min_size=1, max_size=50), st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_sufficient_prefix(raw, p):
    probs = np.sort(np.array(raw) / np.sum(raw))[::-1]
    keep = top_p_keep(probs, p)
    assert probs[:keep].sum() >= p - 1e-9
    if keep > 1:
        assert probs[: keep - 1].sum() < p
