"""Every family's fused builder against transformers, on a tiny random model of that family.

Each model (``tiny_models.FAMILIES``) is built by transformers from a tiny config that
switches on what makes the family different (biases, QK-norms, rope scaling, sliding
windows, soft-capping, multipliers), with trained-like weights: projections of std 0.2,
norms in [0.5, 1.5] (and a second set whose norms are exactly as transformers initialises
them, the case that once broke the fused recipe). The folders and their Optimum exports are
cached under ``models/.cache/`` keyed by tiny_models.py and the Optimum export code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny_models
from onnx_decode import greedy, session
from tiny_models import FAMILIES, build_family, cached

from export.builders import (
    BUILDERS,
    FusedOptions,
    SourceTensors,
    UnplacedTensorError,
    builder_for,
    load_config,
    quantize_symmetric,
    shape_from_config,
)
from export.onnx_export import export_onnx
from export.onnx_files import save_model
from export.validation import ValidationGate, validate

PROMPT = [5, 17, 42, 99, 3, 250, 7, 64, 128, 11, 300, 2]
NEW_TOKENS = 32
# The folders depend on the generator and the Optimum export only.
KEY = hashlib.sha256(
    Path(tiny_models.__file__).read_bytes()
    + (Path(tiny_models.REPO) / "export" / "onnx_export.py").read_bytes()
).hexdigest()[:16]


def family_folder(family: str) -> Path:
    """Both variants of ``family`` and the Optimum export of the trained-like one."""

    def build(folder: Path) -> None:
        build_family(family, folder / "trained")
        build_family(family, folder / "neutral", neutral_norms=True)
        export_onnx(folder / "trained", folder / "onnx")

    return cached(f"family-{family}", KEY, build)


def transformers_model(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


def transformers_greedy(folder: Path) -> tuple[list[int], np.ndarray]:
    """Greedy tokens after PROMPT, and the logits that chose each of them."""
    import torch

    model = transformers_model(folder)
    sequence = list(PROMPT)
    with torch.no_grad():  # no generate(): it would refuse the eos token before min_new_tokens
        for _ in range(NEW_TOKENS):
            logits = model(torch.tensor([sequence])).logits[0].numpy()
            sequence.append(int(logits[-1].argmax()))
    return sequence[len(PROMPT):], logits[len(PROMPT) - 1:]


def fused(folder: Path, transform=None, accuracy_level: int = 4) -> onnx.ModelProto:
    builder = builder_for(shape_from_config(load_config(folder)))
    weights = builder.weights_from(SourceTensors.from_safetensors(folder), transform)
    options = FusedOptions(max_length=256, accuracy_level=accuracy_level,
                           accuracy_level_8bit=accuracy_level)
    return builder.build(weights, options)


def test_every_family_has_a_case() -> None:
    assert set(FAMILIES) == set(BUILDERS)


@pytest.mark.parametrize("variant", ["trained", "neutral"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fused_fp32_greedy_equals_transformers(family: str, variant: str) -> None:
    folder = family_folder(family) / variant
    want_tokens, want = transformers_greedy(folder)
    got_tokens, got = greedy(session(fused(folder)), PROMPT, NEW_TOKENS)
    assert got_tokens == want_tokens
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), rtol=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_optimum_fp32_greedy_equals_transformers(family: str) -> None:
    root = family_folder(family)
    want_tokens, want = transformers_greedy(root / "trained")
    got_tokens, got = greedy(session(root / "onnx" / "model.onnx"), PROMPT, NEW_TOKENS)
    assert got_tokens == want_tokens
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), rtol=0)


def folder_tensors(folder: Path) -> dict[str, np.ndarray]:
    source = SourceTensors.from_safetensors(folder)
    return {name: source.take(name) for name in source.names()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_source_tensor_is_placed_or_refused(family: str) -> None:
    folder = family_folder(family) / "trained"
    builder = builder_for(shape_from_config(load_config(folder)))
    tensors = folder_tensors(folder)

    source = SourceTensors.from_arrays(
        {**tensors, "model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(8, np.float32)})
    builder.weights_from(source)
    assert set(source.taken()) == set(tensors)
    assert list(source.ignored) == ["model.layers.0.self_attn.rotary_emb.inv_freq"]

    stray = "model.layers.1.mlp.extra_proj.weight"
    with pytest.raises(UnplacedTensorError, match="has no place for " + stray.replace(".", r"\.")):
        builder.weights_from(SourceTensors.from_arrays({**tensors, stray: np.ones((4, 4))}))
    kept = {n: t for n, t in tensors.items() if n != "model.norm.weight"}
    with pytest.raises(UnplacedTensorError, match=r"model\.norm\.weight' is missing"):
        builder.weights_from(SourceTensors.from_arrays(kept))


def node_attrs(model: onnx.ModelProto, op: str) -> list[dict[str, object]]:
    return [
        {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        for node in model.graph.node if node.op_type == op
    ]


def test_family_features_are_in_the_graph() -> None:
    def graph(family: str) -> onnx.ModelProto:
        return fused(family_folder(family) / "trained")

    qwen2 = graph("qwen2")
    bias_adds = [n.name for n in qwen2.graph.node if n.name.endswith("qkv_proj/BiasAdd")]
    assert len(bias_adds) == 2  # Qwen2's q/k/v biases, one packed add per layer
    gemma2 = node_attrs(graph("gemma2"), "GroupQueryAttention")
    assert [a.get("local_window_size") for a in gemma2] == [8, None]
    assert all(a["softcap"] == 5.0 for a in gemma2)
    assert all(abs(a["scale"] - 24 ** -0.5) < 1e-7 for a in gemma2)
    gemma3 = graph("gemma3_text")
    caches = [i.name for i in gemma3.graph.initializer if i.name.startswith("cos_cache")]
    assert len(caches) == 2  # local and global rotary tables
    qwen3 = graph("qwen3")
    norms = [n for n in qwen3.graph.node if n.name.endswith("q_norm")]
    assert len(norms) == 2
    phi3 = graph("phi3")
    cos = next(i for i in phi3.graph.initializer if i.name == "cos_cache")
    assert list(cos.dims) == [128, 8]  # LongRoPE's short factors hold to 128; 16 of 32 dims


@pytest.mark.parametrize("family", list(FAMILIES))
def test_int8_fused_gate_figures(family: str, tmp_path: Path) -> None:
    """The gate's own comparison (against the Optimum fp32 export) on 160 tokens sampled
    from the model, in windows of 128 (Phi-3's LongRoPE graph stops there). A random
    model's next-token distribution is flat (median top-2 margin ~0.3 logits, about the int8
    logit error), so top-1 agreement stays below what trained models reach; the bounds only
    catch a broken graph, the figures are in models/README.md."""
    import torch

    root = family_folder(family)
    model = transformers_model(root / "trained")
    torch.manual_seed(1)
    with torch.no_grad():
        ids = model.generate(torch.tensor([PROMPT[:3]]), max_new_tokens=157, do_sample=True,
                             min_new_tokens=157, top_k=0, pad_token_id=0)[0].tolist()
        reference = model(torch.tensor([ids[:64]])).logits[0].numpy()
    quantized = tmp_path / "model.onnx"
    save_model(fused(root / "trained", lambda lin: quantize_symmetric(lin, 8, 32)), quantized)
    result = validate(root / "onnx" / "model.onnx", quantized, ids, 128, ValidationGate(),
                      reference)
    print(f"{family}: {result.summary()}, fp32 diff {result.fp32_max_logit_diff:.1e}")
    assert result.fp32_max_logit_diff is not None and result.fp32_max_logit_diff < 1e-3
    assert result.perplexity_ratio < 1.05
    assert result.top1_agreement > 0.85


@pytest.mark.parametrize("scaling", [
    None,
    {"rope_type": "linear", "factor": 4.0},
    {"rope_type": "dynamic", "factor": 2.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 8192},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
    {"rope_type": "yarn", "factor": 40.0, "mscale": 1.0, "mscale_all_dim": 0.707,
     "beta_fast": 32, "beta_slow": 1, "original_max_position_embeddings": 4096},
])
def test_rotary_frequencies_match_transformers(scaling: dict | None) -> None:
    """Every rope type's frequencies and magnitude against transformers' own functions, at
    real models' sizes (head_dim 128, theta 500000, 128k positions)."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from export.builders.rope import Rope

    config = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_theta=500000.0,
                         max_position_embeddings=131072, rope_scaling=scaling)
    want, want_factor = ROPE_INIT_FUNCTIONS[(scaling or {}).get("rope_type", "default")](
        config, "cpu")
    got, factor = Rope.from_config(config.to_dict(), 128).inverse_frequencies()
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    assert factor == pytest.approx(want_factor, rel=1e-6)
