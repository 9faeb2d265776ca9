"""GGUF files of each family the fused layout reads, laid out as llama.cpp's converter lays
them out: names from gguf-py's TensorNameMap (the converter's own table), Q and K rows
interleaved for the llama architecture, Gemma's norms stored as 1 + w. The fused graph built
from such a file must compute what the graph built from the Hugging Face folder computes."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from onnx_decode import greedy, session
from safetensors.numpy import load_file
from tiny_models import build_family, cached, generator_key

from export.builders import (
    FusedOptions,
    UnplacedTensorError,
    builder_for,
    load_config,
    shape_from_config,
)
from export.builders.weights import SourceTensors
from export.gguf_blocks import GGUF_FAMILIES, weights_from_gguf
from export.layerwise import layerwise_logits

ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3",
                 "gemma2": "gemma2", "gemma3_text": "gemma3"}


def llama_cpp_permute(rows: np.ndarray, heads: int) -> np.ndarray:
    return (rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:])
            .swapaxes(1, 2).reshape(rows.shape))


def write_gguf(folder: Path, family: str, path: Path, extra: str | None = None) -> None:
    """The folder's tensors as f32 GGUF tensors under llama.cpp's names (and an ``extra``
    one)."""
    config = load_config(folder)
    architecture = ARCHITECTURES[family]
    arch_enum = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == architecture)
    names = gguf.get_tensor_name_map(arch_enum, config["num_hidden_layers"])
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    writer = gguf.GGUFWriter(str(path), architecture)
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, name
        part = name.rsplit(".", 2)[-2]
        if architecture == "llama" and part in heads:
            tensor = llama_cpp_permute(tensor, heads[part])
        if architecture.startswith("gemma") and name.endswith("norm.weight"):
            tensor = tensor + np.float32(1.0)
        writer.add_tensor(gguf_name, np.ascontiguousarray(tensor, dtype=np.float32))
    if extra:
        writer.add_tensor(extra, np.ones(8, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_the_families_read_from_gguf_are_listed() -> None:
    assert set(ARCHITECTURES.values()) == GGUF_FAMILIES


def family_source(family: str) -> Path:
    return cached(f"family-src-{family}", generator_key(), lambda f: build_family(family, f))


@pytest.mark.parametrize("family", list(ARCHITECTURES))
def test_a_gguf_of_the_family_builds_the_same_graph(family: str, tmp_path: Path) -> None:
    folder = family_source(family)
    write_gguf(folder, family, tmp_path / "model.gguf")
    shape = shape_from_config(load_config(folder))
    builder = builder_for(shape)
    options = FusedOptions(max_length=128, accuracy_level=0, accuracy_level_8bit=0)
    from_gguf = builder.build(weights_from_gguf(tmp_path / "model.gguf", shape), options)
    from_folder = builder.build(builder.weights_from(SourceTensors.from_safetensors(folder)),
                                options)
    prompt = [5, 17, 42, 99, 3, 250, 7, 64]
    got_tokens, got = greedy(session(from_gguf), prompt, 16)
    want_tokens, want = greedy(session(from_folder), prompt, 16)
    assert got_tokens == want_tokens
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max(), rtol=0)


def test_a_gguf_tensor_without_a_place_is_refused_by_name(tmp_path: Path) -> None:
    folder = family_source("qwen2")
    write_gguf(folder, "qwen2", tmp_path / "model.gguf", extra="blk.0.attn_sinks.weight")
    with pytest.raises(UnplacedTensorError, match=r"blk\.0\.attn_sinks\.weight"):
        weights_from_gguf(tmp_path / "model.gguf", shape_from_config(load_config(folder)))


@pytest.mark.parametrize("family", list(ARCHITECTURES))
def test_the_layerwise_reference_is_transformers_on_the_same_weights(
        family: str, tmp_path: Path) -> None:
    """The gate of a model too large for an fp32 copy compares with transformers run one
    layer at a time on the GGUF's weights (export/layerwise.py): the family's own model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = family_source(family)
    write_gguf(folder, family, tmp_path / "model.gguf")
    ids = [5, 17, 42, 99, 3, 250, 7, 64, 1, 2]
    got = layerwise_logits(tmp_path / "model.gguf", AutoConfig.from_pretrained(folder),
                           shape_from_config(load_config(folder)), ids)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    with torch.inference_mode():
        want = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max(), rtol=0)
