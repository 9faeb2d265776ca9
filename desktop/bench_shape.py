"""``onnxchat bench --shape 1b``: decode speed of a larger, Llama-shaped model with random
weights, as an OnnxChat graph and as a GGUF file of the same 4-bit blocks.

The default model is small enough that per-operator overhead decides its speed; at 1B
parameters reading the weights does (about 0.7 GB per token at 4 bits). The pair is built
once by ``python -m export.synthetic`` (a child process: the app does not import the export
step) into a cache folder keyed by the export package's source, so a change to the graph
builder rebuilds it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import platformdirs

from desktop.engine.runtime import SharedKVDecoder, create_session
from desktop.errors import UserError
from desktop.paths import APP_NAME

SHAPE_NAMES = ("1b", "tiny")
#: What ``python -m export.synthetic`` names the GGUF file in its folder.
GGUF_NAME = "model.gguf"


def cache_root() -> Path:
    """``$ONNXCHAT_BENCH_CACHE``, else the platform's cache folder for OnnxChat."""
    env = os.environ.get("ONNXCHAT_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "bench"


def check_can_build() -> None:
    """Refuse before anything is measured when the export step that builds the pair is not
    installed (the packaged app ships without it)."""
    if importlib.util.find_spec("export") is None or importlib.util.find_spec("gguf") is None:
        raise UserError("--shape needs the export step to build its model: pip install "
                        "'onnxchat[export]' (or pass --shape none)")


def _export_source_key() -> str:
    check_can_build()
    spec = importlib.util.find_spec("export")
    assert spec is not None and spec.submodule_search_locations
    digest = hashlib.sha256()
    folder = Path(next(iter(spec.submodule_search_locations)))
    for file in sorted(folder.glob("*.py")):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def ensure_built(shape: str, quant: str = "q4_0") -> Path:
    """The cached folder of ``shape``, built first if missing (minutes for 1b)."""
    folder = cache_root() / f"{shape}-{quant}-{_export_source_key()}"
    if (folder / "shape.json").is_file():
        return folder
    for stale in folder.parent.glob(f"{shape}-{quant}-*"):
        if stale != folder and not stale.name.startswith("."):
            _remove(stale)
    print(f"building the {shape}-shaped benchmark model into {folder} (once; minutes for 1b)",
          file=sys.stderr, flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "export.synthetic", "--shape", shape, "--quant", quant,
         "--out", str(folder)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(f"building the {shape}-shaped model failed: "
                        f"{lines[-1] if lines else f'exit status {result.returncode}'}")
    return folder


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


class ShapeModel:
    """The OnnxChat side: the engine's session options and shared-KV decoder, greedy."""

    def __init__(self, folder: Path, threads: int) -> None:
        facts = json.loads((folder / "shape.json").read_text(encoding="utf-8"))
        self.facts = facts
        self.graph_file = folder / "onnx" / "model.onnx"
        started = time.perf_counter()
        session, _ = create_session(self.graph_file, "cpu", threads)
        self.decoder = SharedKVDecoder(session, "cpu", int(facts["context_length"]))
        self.load_s = time.perf_counter() - started

    def run(self, ids: list[int], new_tokens: int) -> tuple[float, float]:
        return time_greedy(self.decoder, ids, new_tokens)


def time_greedy(decoder: SharedKVDecoder, ids: list[int], new_tokens: int
                ) -> tuple[float, float]:
    """Prefill and greedy decode speed (tokens/s) from an empty cache, argmax only, so the
    figures are the graph's and not the sampler's."""
    decoder.reset()
    started = time.perf_counter()
    logits = decoder.forward(ids)
    prefilled = time.perf_counter()
    for _ in range(new_tokens):
        logits = decoder.forward([int(np.argmax(logits))])
    ended = time.perf_counter()
    return len(ids) / (prefilled - started), new_tokens / (ended - prefilled)


def prompt(vocab: int, count: int) -> list[int]:
    """Deterministic token ids away from the placeholder vocabulary's special ones."""
    return [int(i) for i in np.random.default_rng(0).integers(259, vocab, count)]
