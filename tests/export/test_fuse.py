"""The fused decoder graph against the plain Optimum export of the same model.

A tiny random Llama is exported with Optimum once per session; the fused graph built from
the same Hugging Face folder must give the same logits (fp32) and the same greedy tokens,
driven the way the app drives it: KV buffers preallocated once and bound as both past and
present. Every family's builder is checked against transformers in test_builders.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tiny_models import FAMILY_BASE

from export.builders import (
    DecoderShape,
    DenseLinear,
    FusedOptions,
    NotFusableError,
    build_fused_model,
    load_config,
    quantize_symmetric,
    shape_from_config,
    weights_from_folder,
)
from export.errors import ExportError
from export.onnx_files import forward, read_io, save_model
from export.recipes import RECIPES, RecipeContext

#: The shared tiny family shape (tests/tiny_models.py) as a Llama with a 320-token vocabulary.
TINY = {**FAMILY_BASE, "vocab_size": 320, "rope_theta": 10000.0, "tie_word_embeddings": True}


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A random tiny Llama exported by Optimum: (model.onnx path, config dict)."""
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**TINY))
    with torch.no_grad():  # norms start as ones; make them distinct so mix-ups show
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    model.save_pretrained(root / "hf")
    main_export(str(root / "hf"), output=str(root / "onnx"), task="text-generation-with-past")
    return root / "onnx" / "model.onnx", load_config(root / "hf")


def hf_folder(model_path: Path) -> Path:
    return model_path.parent.parent / "hf"


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class SharedBufferDecoder:
    """The reference decode loop for the fused layout.

    KV buffers of ``max_length`` positions are allocated once and bound as both the past
    input and the present output of every layer; each step binds only the new token ids and
    an all-ones mask as long as the sequence so far, so no cache is copied between steps.
    """

    def __init__(self, sess: ort.InferenceSession, shape: DecoderShape, max_length: int) -> None:
        self.sess = sess
        self.binding = sess.io_binding()
        kv_shape = (1, shape.num_kv_heads, max_length, shape.head_dim)
        self.buffers = []
        for i in range(shape.num_layers):
            for kind in ("key", "value"):
                buf = ort.OrtValue.ortvalue_from_numpy(np.zeros(kv_shape, np.float32))
                self.binding.bind_ortvalue_input(f"past_key_values.{i}.{kind}", buf)
                self.binding.bind_ortvalue_output(f"present.{i}.{kind}", buf)
                self.buffers.append(buf)
        self.logits = ort.OrtValue.ortvalue_from_numpy(
            np.zeros((1, 1, shape.vocab_size), np.float32)
        )
        self.binding.bind_ortvalue_output("logits", self.logits)
        self.length = 0

    def step(self, ids: list[int]) -> np.ndarray:
        """Feed ``ids`` after everything fed so far; return the last position's logits."""
        self.length += len(ids)
        self.binding.bind_cpu_input("input_ids", np.array([ids], np.int64))
        self.binding.bind_cpu_input("attention_mask", np.ones((1, self.length), np.int64))
        self.sess.run_with_iobinding(self.binding)
        return self.logits.numpy()[0, -1].copy()


class OptimumDecoder:
    """The plain Optimum loop: growing caches fed back as numpy arrays."""

    def __init__(self, sess: ort.InferenceSession, shape: DecoderShape) -> None:
        self.sess = sess
        empty = np.zeros((1, shape.num_kv_heads, 0, shape.head_dim), np.float32)
        self.past = {
            f"past_key_values.{i}.{kind}": empty
            for i in range(shape.num_layers)
            for kind in ("key", "value")
        }
        self.length = 0

    def step(self, ids: list[int]) -> np.ndarray:
        start, self.length = self.length, self.length + len(ids)
        feeds = {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.ones((1, self.length), np.int64),
            "position_ids": np.arange(start, self.length, dtype=np.int64)[None],
            **self.past,
        }
        names = [o.name for o in self.sess.get_outputs()]
        results = dict(zip(names, self.sess.run(None, feeds), strict=True))
        for name, value in results.items():
            if name.startswith("present."):
                self.past[name.replace("present.", "past_key_values.")] = value
        return results["logits"][0, -1]


def greedy(decoder, prompt: list[int], chunks: list[list[int]], n: int):
    """Greedy tokens and logits after ``prompt``, then after each extra chunk (a new turn)."""
    tokens, logits = [], []
    for chunk in [prompt, *chunks]:
        out = decoder.step(chunk)
        for _ in range(n):
            logits.append(out)
            tokens.append(int(out.argmax()))
            out = decoder.step([tokens[-1]])
    return tokens, logits


@pytest.fixture(scope="session")
def fp32_fused(tiny_export: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_path, config = tiny_export
    shape = shape_from_config(config)
    weights = weights_from_folder(hf_folder(model_path), shape)
    path = tmp_path_factory.mktemp("fused") / "model.onnx"
    save_model(build_fused_model(shape, weights, FusedOptions(max_length=128)), path)
    return path


PROMPT = [5, 17, 42, 99, 3, 250, 7, 64, 128, 11, 300, 2]
TURN = [1, 77, 88, 9, 2, 1]


def test_fused_fp32_equals_optimum(tiny_export: tuple[Path, dict], fp32_fused: Path) -> None:
    model_path, config = tiny_export
    shape = shape_from_config(config)
    want_tokens, want = greedy(OptimumDecoder(session(model_path), shape), PROMPT, [TURN], 16)
    fused = SharedBufferDecoder(session(fp32_fused), shape, max_length=128)
    got_tokens, got = greedy(fused, PROMPT, [TURN], 16)
    assert got_tokens == want_tokens
    np.testing.assert_allclose(np.stack(got), np.stack(want), atol=1e-4, rtol=1e-4)


def test_fused_graph_uses_contrib_ops(fp32_fused: Path) -> None:
    model = onnx.load(str(fp32_fused), load_external_data=False)
    ops = {node.op_type for node in model.graph.node}
    assert {"GroupQueryAttention", "SkipSimplifiedLayerNormalization"} <= ops
    assert "Softmax" not in ops and "Concat" not in ops
    logits = next(o for o in model.graph.output if o.name == "logits")
    assert logits.type.tensor_type.shape.dim[1].dim_value == 1  # last position only


def test_int8_fused_tracks_fp32(tiny_export: tuple[Path, dict], tmp_path: Path) -> None:
    model_path, config = tiny_export
    shape = shape_from_config(config)
    weights = weights_from_folder(hf_folder(model_path), shape,
                                  lambda lin: quantize_symmetric(lin, bits=8, block_size=32))
    path = tmp_path / "model.onnx"
    save_model(build_fused_model(shape, weights, FusedOptions(max_length=128)), path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("MatMulNBits") == 4 * shape.num_layers + 1  # qkv, o, gate+up, down; head
    assert "MatMul" not in ops
    _, want = greedy(OptimumDecoder(session(model_path), shape), PROMPT, [], 24)
    _, got = greedy(SharedBufferDecoder(session(path), shape, 128), PROMPT, [], 24)
    want, got = np.stack(want), np.stack(got)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() < 0.02 * scale


def test_symmetric_quantization_round_trips() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((80, 24)).astype(np.float32)  # K=80 is not a whole number of blocks
    lin = quantize_symmetric(w, bits=8, block_size=32)
    assert lin.packed.shape == (24, 3, 32) and lin.scales.shape == (24, 3)
    codes = lin.packed.astype(np.float32) - 128
    restored = (codes * lin.scales[..., None]).reshape(24, -1)[:, :80].T
    assert np.abs(restored - w).max() <= lin.scales.max() / 2 + 1e-6


def test_dense_weights_keep_shapes(tiny_export: tuple[Path, dict]) -> None:
    model_path, config = tiny_export
    shape = shape_from_config(config)
    weights = weights_from_folder(hf_folder(model_path), shape)
    layer = weights.layers[0]
    assert isinstance(layer.qkv, DenseLinear)
    assert layer.qkv.shape == (64, 4 * 16 + 2 * 2 * 16)
    assert weights.lm_head is not None and weights.lm_head.shape == (64, 320)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rope_scaling": {"rope_type": "mrope", "factor": 2.0}}, "rope scaling 'mrope'"),
        ({"model_type": "gpt2"}, "learned absolute positions"),
        ({"model_type": "mamba"}, "no builder for 'mamba' models"),
        ({"hidden_act": "gelu"}, "no 'gelu' activation"),
        ({"partial_rotary_factor": 0.75}, "cannot rotate 12 features"),
    ],
)
def test_unsupported_configs_are_refused(change: dict, message: str) -> None:
    config = {**TINY, "model_type": "llama", **change}
    with pytest.raises(NotFusableError, match=message):
        shape_from_config(config)


def test_shared_buffer_rewinds_by_shortening_the_mask(
    tiny_export: tuple[Path, dict], fp32_fused: Path
) -> None:
    """Regenerating a reply: feed from an earlier length; later buffer rows get overwritten."""
    shape = shape_from_config(tiny_export[1])
    decoder = SharedBufferDecoder(session(fp32_fused), shape, max_length=128)
    first, _ = greedy(decoder, PROMPT, [], 10)
    decoder.length = len(PROMPT) - 1
    again, _ = greedy(decoder, PROMPT[-1:], [], 10)
    assert again == first


def test_gate_scores_every_position_of_a_fused_graph(
    tiny_export: tuple[Path, dict], fp32_fused: Path
) -> None:
    """The validation gate's forward() feeds a last-position-logits graph token by token."""
    ids = np.array(PROMPT, np.int64)
    want, _ = forward(session(tiny_export[0]), ids)
    got, past = forward(session(fp32_fused), ids)
    assert got.shape == want.shape == (1, len(PROMPT), 320)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert past["past_key_values.0.key"].shape[2] == len(PROMPT)


def test_fused_recipes_in_the_registry(tiny_export: tuple[Path, dict], tmp_path: Path) -> None:
    model_path, _ = tiny_export
    context = RecipeContext(model_path, False, hf_folder(model_path))
    out = tmp_path / "onnx" / "model.onnx"
    facts = RECIPES["int8-fused"].apply(model_path, out, context)
    assert facts == {"layout": "fused", "max_length": TINY["max_position_embeddings"]}
    io = read_io(out)
    assert io.layout == "fused" and io.past_present_share_buffer
    assert io.max_length == TINY["max_position_embeddings"]
    assert not io.uses_position_ids
    with pytest.raises(ExportError, match="not a GGUF file"):
        RECIPES["q4-gguf"].apply(model_path, tmp_path / "q4.onnx", context)
