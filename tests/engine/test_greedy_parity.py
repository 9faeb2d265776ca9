"""Greedy generation through the engine equals greedy decoding with transformers on the same
weights, token for token (onnxruntime-genai's test_greedy_search, on our own tiny models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from desktop.engine import ChatEngine, Generator, SamplingSettings, load_model

GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0)


def engine_greedy(folder, prompt_ids, new_tokens):
    gen = Generator(load_model(folder, device="cpu", threads=1))
    gen.append_tokens(prompt_ids)
    out = []
    rng = np.random.default_rng(0)
    for _ in range(new_tokens):
        token = gen.next_token(GREEDY, rng)
        out.append(token)
        gen.append_tokens([token])
    return out


def transformers_greedy(hf_folder, prompt_ids, new_tokens):
    model = AutoModelForCausalLM.from_pretrained(hf_folder)
    ids = torch.tensor([prompt_ids])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             pad_token_id=0)
    return out[0, len(prompt_ids):].tolist()


@pytest.fixture(scope="session")
def tiny_llama_fp32(tiny_llama_hf):
    from tiny_models import cached, export_key, export_tiny

    return cached("tiny-llama-fp32", export_key(), export_tiny(tiny_llama_hf, "fp32")) / "model"


@pytest.mark.parametrize(
    ("hf_fixture", "model_fixture"),
    [("tiny_gpt2_hf", "tiny_gpt2_model"), ("tiny_llama_hf", "tiny_llama_fp32")],
)
def test_tiny_models_match_transformers(hf_fixture, model_fixture, request):
    hf = request.getfixturevalue(hf_fixture)
    folder = request.getfixturevalue(model_fixture)
    prompt = [5, 17, 42, 7, 99, 3]
    assert engine_greedy(folder, prompt, 32) == transformers_greedy(hf, prompt, 32)


@pytest.fixture(scope="session")
def default_fp32():
    """The default model exported without quantization (cached under models/.cache/)."""
    from tiny_models import cached, export_key, export_tiny

    return cached("default-fp32", export_key(), export_tiny("default", "fp32")) / "model"


@pytest.mark.slow
def test_default_model_fp32_export_matches_transformers_for_32_tokens(default_fp32):
    from export.sources import default_gguf_path

    gguf = default_gguf_path()
    model = load_model(default_fp32, device="cpu", threads=2)
    prompt = ChatEngine(model).plan(
        [{"role": "user", "content": "Write a short poem about the sea."}], 48).prompt_ids
    hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                          max_new_tokens=48, eos_token_id=2, pad_token_id=2)
    expected = out[0, len(prompt):].tolist()
    assert len(expected) >= 32, "the prompt should produce a reply of at least 32 tokens"
    assert engine_greedy(default_fp32, prompt, len(expected)) == expected


def test_a_new_generator_starts_from_an_empty_cache(tiny_gpt2_model):
    model = load_model(tiny_gpt2_model, device="cpu", threads=1)
    first = Generator(model)
    first.append_tokens([5, 17, 42])
    second = Generator(model)
    second.append_tokens([5, 17, 42])
    assert model.decoder.length == 3
    assert np.array_equal(first.logits, second.logits)
