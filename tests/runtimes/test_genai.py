"""onnxruntime-genai loads an exported folder through its ``genai_config.json``: the config
matches the graph and the manifest, genai's tokenizer agrees with ``tokenizers`` token for
token, and its greedy answer equals OnnxChat's.

onnxruntime-genai is installed with ``--no-deps`` (``make test`` does it): its wheel asks for
the CPU ``onnxruntime`` package, which must not sit next to ``onnxruntime-gpu``; genai loads
``libonnxruntime`` from whichever of the two is installed.
"""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer


@pytest.fixture(scope="module")
def og():
    try:
        import onnxruntime_genai
    except ImportError:
        pytest.fail(
            "onnxruntime-genai is not installed: run `make test`, or "
            "`.venv/bin/pip install --no-deps onnxruntime-genai==0.18.0`"
        )
    return onnxruntime_genai


def genai_greedy(og, folder, prompt_ids: list[int], new_tokens: int) -> list[int]:
    """The loading snippet of models/README.md ("onnxruntime-genai")."""
    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(
        do_sample=False, repetition_penalty=1.0, max_length=len(prompt_ids) + new_tokens
    )
    generator = og.Generator(model, params)
    generator.append_tokens(prompt_ids)
    while not generator.is_done():
        generator.generate_next_token()
    return [int(t) for t in generator.get_sequence(0)][len(prompt_ids):]


def test_genai_config_describes_the_graph(case, reference):
    ref = reference(case)
    manifest = ref.manifest
    config = json.loads((ref.folder / "genai_config.json").read_text(encoding="utf-8"))
    model, decoder = config["model"], config["model"]["decoder"]
    arch, onnx = manifest["architecture"], manifest["onnx"]
    assert decoder["filename"] == onnx["file"]
    assert (decoder["num_hidden_layers"], decoder["num_attention_heads"]) == (
        arch["num_layers"], arch["num_attention_heads"])
    assert decoder["num_key_value_heads"] == arch["num_key_value_heads"]
    assert (decoder["head_size"], decoder["hidden_size"]) == (arch["head_dim"], arch["hidden_size"])
    assert model["vocab_size"] == arch["vocab_size"]
    assert model["eos_token_id"] == manifest["stop_token_ids"]
    specials = manifest["special_tokens"]
    assert model.get("bos_token_id") == specials["bos_token_id"]
    pad = specials["pad_token_id"]
    assert model["pad_token_id"] == (pad if pad is not None else manifest["stop_token_ids"][0])
    shared = bool(onnx.get("past_present_share_buffer"))
    assert config["search"]["past_present_share_buffer"] is shared
    bound = onnx.get("max_length") or manifest["context_length"]
    assert model["context_length"] == min(manifest["context_length"], bound)
    names = {
        k: v for k, v in decoder["inputs"].items() if not k.startswith(("past_key", "past_value"))
    }
    assert sorted(names.values()) == sorted(
        i for i in onnx["inputs"] if not i.startswith(onnx["past_key_prefix"]))
    assert ("position_ids" in names) is onnx["uses_position_ids"]


def test_genai_tokenizer_agrees_with_tokenizers(case, reference, texts, og):
    ref = reference(case)
    tokenizer = og.Tokenizer(og.Model(str(ref.folder)))
    plain = Tokenizer.from_file(str(ref.folder / "tokenizer.json"))
    assert [int(t) for t in tokenizer.encode(ref.prompt_text)] == ref.prompt_ids
    for text in texts:
        expected = plain.encode(text, add_special_tokens=False).ids
        got = [int(t) for t in tokenizer.encode(text)]
        assert got == expected, text
        assert tokenizer.decode(got) == text


def test_genai_greedy_equals_onnxchat(case, reference, og):
    ref = reference(case)
    assert "genai" in ref.manifest["targets"]
    got = genai_greedy(og, ref.folder, ref.prompt_ids, len(ref.tokens))
    assert ref.cut(got) == ref.tokens
