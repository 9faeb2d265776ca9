"""A k-quant GGUF as llama.cpp's own quantizer writes it, exported with ``auto``.

A tiny random Llama wide enough for k-quants (256 features) is written as an F32 GGUF, then
quantized to Q4_K_M by llama.cpp (llama-cpp-python's ``llama_model_quantize``): Q4_K
projections with Q6_K values and down projections. ``auto`` must carry those blocks
(no re-quantizing), and the check against llama.cpp on the same file must run: the same
token ids, and an NLL per byte within 5 % of llama.cpp's. Needs llama-cpp-python (the
``bench`` extra); skipped with that reason without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.gguf_blocks import EXACT_4BIT, EXACT_8BIT
from export.pipeline import ExportSettings, export_model


def _llama_hf(folder: Path) -> None:
    """A random Llama with 256 features (k-quants need rows of 256) and non-trivial norms."""
    import torch
    from tiny_models import CONTEXT, build_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = build_tokenizer(folder)
    config = LlamaConfig(
        hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=CONTEXT,
        bos_token_id=0, eos_token_id=0, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    model.save_pretrained(folder)


def test_a_llama_cpp_q4_k_m_file_exports_with_its_own_blocks(tmp_path: Path) -> None:
    llama_cpp = pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed (the bench extra)")
    from tiny_models import build_llama_gguf

    _llama_hf(tmp_path / "hf")
    build_llama_gguf(tmp_path / "hf")(tmp_path / "f32")
    source = tmp_path / "tiny-q4_k_m.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert llama_cpp.llama_model_quantize(
        str(tmp_path / "f32" / "tiny-llama.gguf").encode(), str(source).encode(), params) == 0

    result = export_model(ExportSettings(source=str(source), out_dir=tmp_path / "out"))
    manifest = json.loads((result.path / "manifest.json").read_text())
    quant = manifest["quantization"]
    assert quant["recipe"] == "q4-gguf"
    blocks = quant["gguf_blocks"]
    assert blocks["Q4_K"]["carried_as"] == EXACT_4BIT
    assert blocks["Q6_K"]["carried_as"] == EXACT_8BIT
    assert all(entry["carried_as"] != "re-quantized 8-bit" for entry in blocks.values())
    validation = manifest["validation"]
    source_check = validation["source"]
    assert source_check["ran"] is True, source_check["reason"]
    assert source_check["tokenizer_matches"] is True
    assert abs(source_check["nll_ratio"] - 1) <= 0.05
    assert validation["passed"] is True
    report = (result.path / "validation_report.md").read_text()
    assert "llama.cpp" in report and "the same ids" in report
