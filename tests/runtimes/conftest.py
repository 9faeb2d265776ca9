"""Shared pieces of the runtime checks: OnnxChat's own greedy answer as the reference, the
texts every tokenizer must agree on, and the cached Node.js install for transformers.js.

The reference is produced by driving :class:`desktop.engine.Generator` directly (greedy,
repetition penalty 1.0, no stop handling), so the only difference left between runtimes is
where they stop: every other runtime stops at the first stop token, so the reference is cut
after the first one too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from environment import environment

from desktop.engine import Generator, SamplingSettings, folding, load_model

# Other runtimes must never reach for the Hugging Face hub; the folders are complete.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEW_TOKENS = 32
# A comparison over fewer tokens than this would prove little; pick another prompt then.
MIN_COMPARED = 16
# An answer that repeats a token or two would not show a broken cache or wrong positions.
MIN_DISTINCT = 8
GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0)
MESSAGES = [{"role": "user", "content": "Write a short poem about the sea."}]
# Scripts, accents, emoji (with a skin-tone modifier), code, odd whitespace: the places where
# a byte-level tokenizer read as something else goes wrong first. No vulgar fractions (½):
# under a `Digits` pre-tokenizer (SmolLM's own tokenizer.json, which llama.cpp's `smollm`
# pre-tokenizer matches) onnxruntime-genai and transformers.js split them differently from
# tokenizers and llama.cpp (models/README.md, "Tokenizer").
TEXTS = [
    "Hello wörld! Ünïcödé façade, naïve café — “quotes” 3.5.",
    "你好，世界。小模型也要能处理中文。日本語のテキスト、한국어 문장.",
    "Привет, мир! مرحبا بالعالم नमस्ते दुनिया Γειά σου κόσμε",
    "Emoji 🙂👍🏽🚀 and symbols ∑∫√∞ ≠ ≤ ≥ €£¥",
    "def add(a, b):\n\treturn a + b  # two spaces\r\n\n    indented\n",
    "  leading spaces, trailing spaces   ",
]
NODE_DIR = Path(__file__).resolve().parent / "node"
# Exports of tiny models that give varied greedy output, one per layout and weight format.
TINY_EXPORTS = {
    "gpt2-fp32": ("tiny_gpt2_hf", "fp32"),  # GPT-2: no grouped KV heads, genai "decoder" type
    "gpt2-int8": ("tiny_gpt2_hf", "int8"),  # MatMulNBits, Gemm and tied-head rewrites
    "llama-int8": ("tiny_llama_hf", "int8"),  # position_ids, grouped KV heads
    "llama-fused": ("tiny_llama_hf", "int8-fused"),  # fused layout, shared KV buffer
}
# Every runtime test runs on each of these; "default" is the default model folder.
CASES = [*TINY_EXPORTS, pytest.param("default", marks=pytest.mark.slow)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test here that takes ``case`` runs on each of :data:`CASES`."""
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", CASES)


@dataclass(frozen=True)
class Reference:
    """OnnxChat's greedy reply to :data:`MESSAGES` on one model folder."""

    folder: Path
    manifest: dict
    messages: list[dict[str, str]]
    prompt_text: str
    prompt_ids: list[int]
    stop_ids: frozenset[int]
    tokens: list[int]  # NEW_TOKENS greedy tokens, cut after the first stop token

    def cut(self, ids: list[int]) -> list[int]:
        """Another runtime's new tokens, cut the same way."""
        return until_stop(list(ids)[:NEW_TOKENS], self.stop_ids)


def until_stop(ids: list[int], stop_ids: frozenset[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in stop_ids:
            return ids[: i + 1]
    return ids


def onnxchat_reference(folder: Path) -> Reference:
    # The folder's graph as exported, which the other runtimes run too: not the copy OnnxChat
    # runs on the CPU with the Q4_1 offsets folded into the packed weights (its numbers
    # differ in the last bits; tests/engine/test_folding.py checks it against llama.cpp).
    with environment(folding.DISABLE_ENV, "0"):
        model = load_model(folder, device="cpu", threads=2)
    assert model.folded is None
    prompt_text = model.template.render(MESSAGES)
    prompt_ids = model.encode(prompt_text)
    generator = Generator(model)
    generator.append_tokens(prompt_ids)
    rng = np.random.default_rng(0)
    tokens = []
    for _ in range(NEW_TOKENS):
        token = generator.next_token(GREEDY, rng)
        tokens.append(token)
        generator.append_tokens([token])
    stops = frozenset(model.manifest.stop_token_ids)
    reference = Reference(
        folder=Path(folder),
        manifest=model.manifest.raw,
        messages=MESSAGES,
        prompt_text=prompt_text,
        prompt_ids=prompt_ids,
        stop_ids=stops,
        tokens=until_stop(tokens, stops),
    )
    assert len(reference.tokens) >= MIN_COMPARED, (
        f"{folder}: OnnxChat stops after {len(reference.tokens)} tokens; "
        "the comparison needs a prompt with a longer answer"
    )
    assert len(set(reference.tokens)) >= MIN_DISTINCT, (
        f"{folder}: OnnxChat's answer repeats {sorted(set(reference.tokens))}; a comparison "
        "of such output would not notice a broken cache"
    )
    return reference


@pytest.fixture(scope="session")
def reference(request: pytest.FixtureRequest, tiny_export) -> Callable[[str], Reference]:
    """``reference(case)``: OnnxChat's greedy answer on the model folder of a :data:`CASES`
    entry, computed once per session."""
    done: dict[str, Reference] = {}

    def get(case: str) -> Reference:
        if case not in done:
            folder = (request.getfixturevalue("default_model") if case == "default"
                      else tiny_export(case))
            done[case] = onnxchat_reference(folder)
        return done[case]

    return get


def _redrawn(source: Path) -> Callable[[Path], None]:
    """A builder copying the tiny Hugging Face folder ``source`` with its weights drawn again
    (standard deviation 0.2, biases 0.1, norm scales from [0.5, 1.5] as in trained models).

    With the fixtures' own initialisation (0.02, norm scales all one) a tied-embedding model
    repeats its last input token forever; a runtime with a broken cache or wrong positions
    would pass a comparison of such output."""

    def build(folder: Path) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors"))
        config = AutoConfig.from_pretrained(source)
        config.initializer_range = 0.2
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if param.ndim == 1 and name.endswith("bias"):
                    param.normal_(0.0, 0.1)
                elif param.ndim == 1:
                    param.uniform_(0.5, 1.5)
        model.save_pretrained(folder)

    return build


def _export(source: Path, recipe: str) -> Callable[[Path], None]:
    """A builder exporting ``source`` with ``recipe``. ``force``: random weights have many
    near-tied logits, so the int8 gate's top-1 agreement lands near 0.92 on them; the runtimes
    are compared on whatever graph they are given, and quality is the export tests' business."""

    def build(folder: Path) -> None:
        from export.pipeline import ExportSettings, export_model

        folder.mkdir(parents=True)
        export_model(ExportSettings(source=str(source), recipe=recipe, name="model",
                                    out_dir=folder, force=True))

    return build


def _this_file_key(*parts: str) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_export(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``tiny_export("llama-fused")``: a model folder from :data:`TINY_EXPORTS`, built
    once and cached under ``models/.cache/`` (about 10 s each on two cores)."""
    from tiny_models import cached, export_key, generator_key

    def get(name: str) -> Path:
        hf_fixture, recipe = TINY_EXPORTS[name]
        hf = cached(f"runtimes-{hf_fixture.replace('_', '-')}", _this_file_key(generator_key()),
                    _redrawn(request.getfixturevalue(hf_fixture)))
        key = _this_file_key(generator_key(), export_key())
        return cached(f"runtimes-{name}", key, _export(hf, recipe)) / "model"

    return get


def _node_key() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((NODE_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def _npm_ci(folder: Path) -> None:
    """Install the pinned transformers.js into ``folder``.

    ``--ignore-scripts``: onnxruntime-node's install script downloads CUDA binaries (and
    fails without a reachable CUDA download); its CPU binaries are in the package itself.
    """
    folder.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NODE_DIR / name, folder / name)
    result = subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci of {NODE_DIR}/package-lock.json failed:\n{result.stderr[-3000:]}")


@pytest.fixture(scope="session")
def node_script() -> Path:
    """``generate.mjs`` inside a cached install of the pinned transformers.js
    (``models/.cache/node-<hash of package files>/``, about 475 MB)."""
    from tiny_models import cached

    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("transformers.js checks need Node.js and npm on PATH")
    folder = cached("node", _node_key(), _npm_ci)
    script = folder / "generate.mjs"  # beside node_modules, so its imports resolve
    shutil.copy(NODE_DIR / "generate.mjs", script)
    return script


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """Texts every runtime's tokenizer must encode and decode like ``tokenizers``."""
    return list(TEXTS)
