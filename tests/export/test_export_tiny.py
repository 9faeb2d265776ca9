"""Tiny GPT-2 and Llama models exported end to end: the ONNX graph computes what PyTorch
computes, the folder holds what models/README.md promises, and other runtimes load it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from export.onnx_files import forward, make_session
from export.verify import verify_folder

# fp32 ONNX against fp32 PyTorch: same arithmetic, different kernels and fusion order.
ATOL = 1e-4
TEXT = "The keeper wrote the weather into the ledger, 每天晚上 🙂 def f(x): return x"
LAYOUT = {
    "manifest.json",
    "onnx/model.onnx",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "genai_config.json",
    "validation_report.md",
}


@pytest.fixture(params=["gpt2", "llama"])
def tiny(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(Hugging Face folder, exported fp32 model folder) of each tiny architecture."""
    hf = request.getfixturevalue(f"tiny_{request.param}_hf")
    model = request.getfixturevalue(f"tiny_{request.param}_model")
    return hf, model


def _torch_logits(hf: Path, ids: list[int]) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].numpy()


def _ids(model: Path) -> list[int]:
    return Tokenizer.from_file(str(model / "tokenizer.json")).encode(TEXT).ids


def test_folder_layout_and_hashes(tiny: tuple[Path, Path]) -> None:
    _, model = tiny
    files = {p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file()}
    assert files == LAYOUT
    assert verify_folder(model) == []
    assert not any(p.name.startswith(".") for p in model.parent.iterdir())


def test_logits_match_pytorch_without_past(tiny: tuple[Path, Path]) -> None:
    hf, model = tiny
    ids = _ids(model)
    assert len(ids) > 20
    expected = _torch_logits(hf, ids)
    logits, present = forward(make_session(model / "onnx" / "model.onnx"), np.array(ids))
    np.testing.assert_allclose(logits[0], expected, atol=ATOL, rtol=0)
    assert all(value.shape[2] == len(ids) for value in present.values())


def test_logits_match_pytorch_with_past(tiny: tuple[Path, Path]) -> None:
    """Prefill a prefix, then feed the rest one chunk and one token at a time."""
    hf, model = tiny
    ids = _ids(model)
    expected = _torch_logits(hf, ids)
    session = make_session(model / "onnx" / "model.onnx")
    split = len(ids) - 6
    _, past = forward(session, np.array(ids[:split]))
    logits, past = forward(session, np.array(ids[split:-1]), past)
    np.testing.assert_allclose(logits[0], expected[split:-1], atol=ATOL, rtol=0)
    logits, past = forward(session, np.array(ids[-1:]), past)
    np.testing.assert_allclose(logits[0, -1], expected[-1], atol=ATOL, rtol=0)
    assert next(iter(past.values())).shape[2] == len(ids)


def test_manifest_describes_the_folder(tiny: tuple[Path, Path]) -> None:
    hf, model = tiny
    manifest = json.loads((model / "manifest.json").read_text())
    config = json.loads((hf / "config.json").read_text())
    arch = manifest["architecture"]
    assert manifest["schema_version"] == 1
    assert manifest["name"] == "model"
    assert manifest["source"]["kind"] == "folder"
    assert manifest["source"]["path"] == str(hf)
    assert arch["model_type"] == config["model_type"]
    assert arch["num_layers"] == 2
    assert arch["hidden_size"] == 64
    assert arch["vocab_size"] == len(Tokenizer.from_file(str(hf / "tokenizer.json")).get_vocab())
    if config["model_type"] == "llama":
        assert (arch["num_attention_heads"], arch["num_key_value_heads"]) == (4, 2)
        assert arch["head_dim"] == 16
    else:
        assert (arch["num_attention_heads"], arch["num_key_value_heads"]) == (2, 2)
        assert arch["head_dim"] == 32
    assert manifest["context_length"] == 128
    onnx = manifest["onnx"]
    assert onnx["file"] == "onnx/model.onnx" and onnx["data_file"] is None
    assert {"input_ids", "attention_mask"} <= set(onnx["inputs"])
    assert sum(name.startswith("past_key_values.") for name in onnx["inputs"]) == 4
    assert onnx["outputs"][0] == "logits"
    assert onnx["uses_position_ids"] == ("position_ids" in onnx["inputs"])
    # <|endoftext|> (eos of config and tokenizer) and <|im_end|> (the template's end of
    # turn) stop a reply; <|im_start|> opens turns and must not.
    assert manifest["stop_token_ids"] == [0, 2]
    assert manifest["special_tokens"]["end_of_turn_token_id"] == 2
    assert manifest["chat_template"] == {"file": "chat_template.jinja"}
    assert manifest["tokenizer"]["canonicalised"] is False
    assert manifest["quantization"]["recipe"] == "fp32"
    assert manifest["sampling_defaults"] == {
        "temperature": 0.7, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
        "repetition_penalty": 1.1, "max_new_tokens": 512,
    }
    validation = manifest["validation"]
    assert validation["passed"] is True and validation["forced"] is False
    assert validation["perplexity_ratio"] == 1.0 and validation["top1_agreement"] == 1.0
    assert validation["fp32_max_logit_diff"] < ATOL
    assert set(manifest["versions"]) >= {
        "onnxchat", "optimum", "onnx", "onnxruntime", "transformers", "torch"
    }
    assert "onnxchat" in manifest["targets"] and "transformers.js" in manifest["targets"]
    assert set(manifest["files"]) == LAYOUT - {"manifest.json"}


def test_genai_config_matches_manifest(tiny: tuple[Path, Path]) -> None:
    _, model = tiny
    manifest = json.loads((model / "manifest.json").read_text())
    genai = json.loads((model / "genai_config.json").read_text())
    decoder = genai["model"]["decoder"]
    arch = manifest["architecture"]
    assert decoder["filename"] == "onnx/model.onnx"
    assert decoder["num_hidden_layers"] == arch["num_layers"]
    assert decoder["num_key_value_heads"] == arch["num_key_value_heads"]
    assert decoder["head_size"] == arch["head_dim"]
    assert ("position_ids" in decoder["inputs"]) == manifest["onnx"]["uses_position_ids"]
    assert genai["model"]["eos_token_id"] == manifest["stop_token_ids"]
    assert genai["model"]["context_length"] == 128
    assert genai["search"]["past_present_share_buffer"] is False


def test_transformers_tokenizer_agrees_with_tokenizers(tiny: tuple[Path, Path]) -> None:
    _, model = tiny
    hf_tokenizer = AutoTokenizer.from_pretrained(model)
    assert hf_tokenizer(TEXT).input_ids == _ids(model)
    assert hf_tokenizer.eos_token_id == 0
    prompt = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_optimum_loads_the_folder(tiny: tuple[Path, Path]) -> None:
    """The "optimum" target: ORTModelForCausalLM greedy-decodes what our forward loop does."""
    from optimum.onnxruntime import ORTModelForCausalLM

    _, model = tiny
    ids = _ids(model)[:8]
    ort_model = ORTModelForCausalLM.from_pretrained(
        model, subfolder="onnx", provider="CPUExecutionProvider"
    )
    generated = ort_model.generate(
        input_ids=torch.tensor([ids]), max_new_tokens=5, do_sample=False,
        eos_token_id=None, pad_token_id=0,
    )[0].tolist()
    session = make_session(model / "onnx" / "model.onnx")
    logits, past = forward(session, np.array(ids))
    ours = list(ids)
    for _ in range(5):
        ours.append(int(logits[0, -1].argmax()))
        logits, past = forward(session, np.array(ours[-1:]), past)
    assert generated == ours


def test_int8_export_quantizes_every_linear_and_passes_the_gate(
    tiny_gpt2_int8_model: Path, tiny_gpt2_model: Path
) -> None:
    """GPT-2's Gemm layers and tied LM head are rewritten so MatMulNBits reaches them."""
    import onnx

    manifest = json.loads((tiny_gpt2_int8_model / "manifest.json").read_text())
    quant = manifest["quantization"]
    assert quant["recipe"] == "int8" and quant["bits"] == 8 and quant["block_size"] == 32
    # 2 layers × 4 linears (Gemm in GPT-2) + the LM head
    assert quant["quantized_matmuls"] == 9
    graph = onnx.load(str(tiny_gpt2_int8_model / "onnx" / "model.onnx")).graph
    assert not [n for n in graph.node if n.op_type == "Gemm"]
    assert manifest["validation"]["passed"] is True
    assert manifest["validation"]["top1_agreement"] >= 0.95
    assert verify_folder(tiny_gpt2_int8_model) == []
    ids = _ids(tiny_gpt2_model)
    fp32, _ = forward(make_session(tiny_gpt2_model / "onnx" / "model.onnx"), np.array(ids))
    int8, _ = forward(make_session(tiny_gpt2_int8_model / "onnx" / "model.onnx"), np.array(ids))
    assert np.abs(int8 - fp32).max() < 0.05 * np.abs(fp32).max()
    assert not np.array_equal(int8, fp32)
