"""The CUDA graph of a fused export: written beside the CPU graph, checked on the CPU.

``onnx/model_cuda.onnx`` is the fp16 twin of ``onnx/model.onnx`` (``export/fp16.py``) and
reads the big tensors both share from the CPU graph's file (``export/shared_data.py``), so
the folder grows by the fp16 scales and norms only. CI machines have no GPU, so the export
checks the CUDA graph with ONNX Runtime's CPU provider, which runs every operator it uses in
fp16: a prompt and a few greedy steps must give finite logits close to the CPU graph's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from export.fp16 import to_fp16
from export.onnx_files import CUDA_FILE, empty_past, make_session
from export.shared_data import save_sharing

#: Prompt tokens and greedy steps of the check (fp16 on a CPU is slow; this is a sanity
#: check, the quality figures come from a GPU run: tests/gpu/run.sh).
CHECK_PROMPT = 32
CHECK_STEPS = 4


@dataclass(frozen=True)
class CudaGraphCheck:
    """The CUDA graph against the CPU graph, both on the CPU provider: the logits after the
    prompt and after each greedy step (the CPU graph's tokens fed to both)."""

    prompt_tokens: int
    steps: int
    max_logit_diff: float
    same_top1: float

    def manifest(self) -> dict[str, float | int]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def write_cuda_graph(model: onnx.ModelProto, cpu_graph: Path) -> Path:
    """Save the fp16 twin of the fused ``model`` (already saved at ``cpu_graph``) beside it."""
    path = cpu_graph.with_name(CUDA_FILE)
    save_sharing(to_fp16(model, base_dir=cpu_graph.parent), path, cpu_graph)
    return path


def check_cuda_graph(cpu_graph: Path, cuda_graph: Path, token_ids: list[int]) -> CudaGraphCheck:
    """Run both graphs on a prompt and a few greedy steps; raise :class:`ValueError` when
    the CUDA graph's logits are not finite (activations beyond fp16's range)."""
    prompt = np.asarray(token_ids[:CHECK_PROMPT], np.int64).reshape(1, -1)
    want = _greedy_logits(make_session(cpu_graph), prompt, None)
    tokens = [int(row.argmax()) for row in want[:-1]]
    got = _greedy_logits(make_session(cuda_graph), prompt, tokens)
    if not np.isfinite(got).all():
        raise ValueError("its logits are not finite (activations beyond fp16's range)")
    return CudaGraphCheck(
        prompt_tokens=prompt.shape[1],
        steps=CHECK_STEPS,
        max_logit_diff=float(np.abs(got - want).max()),
        same_top1=float((got.argmax(-1) == want.argmax(-1)).mean()),
    )


def _greedy_logits(session, prompt: np.ndarray, tokens: list[int] | None) -> np.ndarray:
    """Last-position logits after ``prompt``, then after each of ``tokens`` (or of the
    session's own greedy choices when None): ``CHECK_STEPS + 1`` rows."""
    names = [o.name for o in session.get_outputs()]
    past = empty_past(session)
    rows = []
    ids = prompt
    for step in range(CHECK_STEPS + 1):
        total = next(iter(past.values())).shape[2] + ids.shape[1]
        feeds = {"input_ids": ids, "attention_mask": np.ones((1, total), np.int64), **past}
        results = dict(zip(names, session.run(names, feeds), strict=True))
        rows.append(results["logits"][0, -1].astype(np.float32))
        past = {name.replace("present.", "past_key_values.", 1): value
                for name, value in results.items() if name.startswith("present.")}
        if step < CHECK_STEPS:
            token = tokens[step] if tokens is not None else int(rows[-1].argmax())
            ids = np.array([[token]], np.int64)
    return np.stack(rows)
