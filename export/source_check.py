"""The export checked against its source runtime, not only against itself.

The quality gate compares the shipped graph with the fp32 export through the same converted
tokenizer, so it cannot see a wrong tokenizer or a wrong conversion. For a GGUF source the
runtime people use the file with is llama.cpp: this module asks it (through
llama-cpp-python, in a child process: :mod:`export.llama_cpp_reference`) for its token ids of
the validation text and its negative log-likelihood over the same token windows the gate
scores. The gate then requires the same ids and an NLL per byte within a few percent of
llama.cpp's. Without llama-cpp-python (the optional ``bench`` extra) the check is not run
and the manifest says so.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.llama_cpp_reference import BATCH

LLAMA_CPP = "llama-cpp-python"
NOT_INSTALLED = (
    "llama-cpp-python is not installed; install the bench extra "
    "(pip install 'onnxchat[bench]') to check a GGUF export against llama.cpp"
)
# llama.cpp evaluates 1024 tokens of a 7B model in minutes on 2 cores; a hang is not that.
TIMEOUT_S = 3600


@dataclass
class SourceReference:
    """The source runtime's figures on the validation text (``ran`` False: why not)."""

    runtime: str
    ran: bool
    reason: str | None = None  # with ``ran`` True: how the figures were taken, if unusually
    tokens: int | None = None  # the source runtime's token count for the whole text
    tokenizer_matches: bool | None = None
    first_difference: int | None = None  # index of the first differing token id
    nll: float | None = None  # summed over the gate's windows, same token ids as ours
    predictions: int | None = None
    bytes: int | None = None  # UTF-8 bytes of the text those predictions cover

    def manifest(self) -> dict[str, Any]:
        return asdict(self)


def predicted_bytes(tokenizer: Any, windows: list[np.ndarray]) -> int:
    """UTF-8 bytes of the text predicted in ``windows`` (all but each window's first token):
    the denominator of NLL per byte, the same for every runtime scored on these ids."""
    return sum(
        len(tokenizer.decode([int(t) for t in w[1:]], skip_special_tokens=False).encode("utf-8"))
        for w in windows
    )


def _crash_reason(code: int, stderr: str, how: str = "") -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"llama.cpp crashed ({name}) while evaluating the text{how}; the native build " \
               "of llama-cpp-python may not suit this CPU"
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    return f"llama.cpp failed (exit {code}): {last[:300]}"


def llama_cpp_reference(
    model: Path, text: str, token_ids: list[int], windows: list[np.ndarray], tokenizer: Any
) -> SourceReference:
    """Run llama.cpp on ``model`` in a child process; never raises for llama.cpp's sake.

    A child killed by a signal is asked again to read the text one token at a time: some
    native builds die only on multi-token batches (in ggml's AMX kernel on some AMX CPUs), and
    a one-token batch is what each of llama.cpp's decode steps is. The figures are then
    llama.cpp's all the same, and ``reason`` says how they were taken."""
    try:
        version = importlib.metadata.version(LLAMA_CPP)
    except importlib.metadata.PackageNotFoundError:
        return SourceReference(runtime="llama.cpp", ran=False, reason=NOT_INSTALLED)
    runtime = f"llama.cpp (llama-cpp-python {version})"
    request = {
        "model": str(model),
        "text": text,
        "windows": [[int(t) for t in w] for w in windows],
        "threads": os.cpu_count() or 1,
    }
    note = None
    try:
        done = _run_child(request)
        if done.returncode < 0:
            note = (_crash_reason(done.returncode, done.stderr, f" in batches of {BATCH} tokens")
                    + "; read again one token at a time")
            done = _run_child(request | {"batch": 1})
    except subprocess.TimeoutExpired:
        return SourceReference(runtime, False, f"llama.cpp took over {TIMEOUT_S} s")
    if done.returncode != 0:
        how = " one token at a time" if note else ""
        return SourceReference(runtime, False, _crash_reason(done.returncode, done.stderr, how))
    answer = json.loads(done.stdout)
    theirs = answer["tokens"]
    first = next(
        (i for i, (a, b) in enumerate(zip(token_ids, theirs, strict=False)) if a != b),
        None if len(token_ids) == len(theirs) else min(len(token_ids), len(theirs)),
    )
    return SourceReference(
        runtime=runtime,
        ran=True,
        tokens=len(theirs),
        tokenizer_matches=first is None,
        first_difference=first,
        nll=answer["nll"],
        predictions=answer["predictions"],
        bytes=predicted_bytes(tokenizer, windows),
        reason=note,
    )


def _run_child(request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``python -m export.llama_cpp_reference`` on ``request``."""
    with tempfile.TemporaryDirectory(prefix="onnxchat-llama-cpp-") as work:
        path = Path(work) / "request.json"
        path.write_text(json.dumps(request), encoding="utf-8")
        return subprocess.run(
            [sys.executable, "-m", "export.llama_cpp_reference", str(path)],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )
