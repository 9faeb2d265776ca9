"""llama.cpp's view of a GGUF file, computed in a child process: its token ids for a text and
its negative log-likelihood over given token windows.

Why a child process: llama-cpp-python is native code built on the user's machine, and a
build can crash (native builds were seen to die on multi-token batches on AVX-512 and AMX
CPUs, in ggml's AMX kernel on the latter); a crash must cost the export one line in its
manifest, not the export itself. The request's ``batch`` (tokens per evaluation,
:data:`BATCH` unless said) lets the parent read the text again one token at a time after
such a crash. The parent (:mod:`export.source_check`) writes a JSON request file and reads
one JSON object from stdout: ``python -m export.llama_cpp_reference REQUEST.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: Tokens per evaluation unless the request says otherwise: llama.cpp's default batch.
BATCH = 512


def window_nll(logits: np.ndarray, ids: list[int]) -> float:
    """Sum over positions of −log p(next id) from (len(ids), vocab) logits, in float64."""
    shifted = logits[: len(ids) - 1].astype(np.float64)
    peak = shifted.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted - peak).sum(axis=-1)) + peak[:, 0]
    target = shifted[np.arange(len(ids) - 1), ids[1:]]
    return float((log_norm - target).sum())


def reference(model: Path, text: str, windows: list[list[int]], threads: int,
              batch: int = BATCH) -> dict[str, Any]:
    """llama.cpp's token ids for ``text`` and its NLL summed over ``windows``, evaluated
    ``batch`` tokens at a time."""
    import llama_cpp

    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        llm = llama_cpp.Llama(
            model_path=str(model),
            n_ctx=max(len(w) for w in windows),
            n_batch=batch,
            n_ubatch=batch,
            logits_all=True,
            n_threads=threads,
            verbose=False,
        )
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    nll, count = 0.0, 0
    for ids in windows:
        llm.reset()
        llm.eval(ids)
        nll += window_nll(np.asarray(llm.scores[: len(ids)]), ids)
        count += len(ids) - 1
    return {
        "version": llama_cpp.__version__,
        "tokens": [int(t) for t in tokens],
        "nll": nll,
        "predictions": count,
    }


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = reference(
        Path(request["model"]), request["text"], request["windows"], int(request["threads"]),
        int(request.get("batch", BATCH)),
    )
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
