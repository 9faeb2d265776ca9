"""Profile decode steps of a model folder with ONNX Runtime's profiler; summarize per op.

Usage::

    python tests/gpu/profile_step.py MODEL_FOLDER [--device cuda|cpu|auto] [--steps 16]
        [--prompt-tokens 128] [--threads N] [--out DIR]

The engine picks the graph and device as the app does (``load_model``); the same graph is
then opened again with profiling on and driven by the engine's own decoder: a prompt, a few
warm-up steps, then ``--steps`` profiled decode steps. The summary adds up every node's time
per operator type over those steps. On CUDA, ONNX Runtime's per-node times are the host's
time in each kernel's launch (the pip wheel does not time GPU kernels themselves), so they
show how much of a step is launch overhead; ``step_ms`` is each step's wall time.

Writes ``profile_summary.json`` (and prints it) and keeps ORT's raw trace beside it in
``--out`` (default: the current folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

from desktop.engine import load_model  # noqa: E402
from desktop.engine.runtime import KVDecoder, SharedKVDecoder  # noqa: E402

WARM_UP = 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, default=Path.cwd())
    args = parser.parse_args()

    model = load_model(args.folder, device=args.device, threads=args.threads)
    base = model.decoder.session
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    args.out.mkdir(parents=True, exist_ok=True)
    options.profile_file_prefix = str(args.out / "ort_profile")
    if args.threads:
        options.intra_op_num_threads = args.threads
    # Per-node times need plain runs: a captured CUDA graph replays as one launch.
    provider_options = base.get_provider_options()
    providers = [(name, {k: v for k, v in provider_options.get(name, {}).items()
                         if k != "enable_cuda_graph"}) for name in base.get_providers()]
    session = ort.InferenceSession(str(args.folder / model.graph), options, providers=providers)
    layout = model.manifest.raw["onnx"]
    decoder: KVDecoder | SharedKVDecoder
    if layout.get("past_present_share_buffer"):
        decoder = SharedKVDecoder(session, model.device.used,
                                  int(layout.get("max_length") or model.manifest.context_length))
    else:
        decoder = KVDecoder(session, model.device.used)

    text = (REPO / "export" / "data" / "validation.txt").read_text(encoding="utf-8")
    prompt = model.encode(text)[: args.prompt_tokens]
    logits = decoder.forward(prompt)
    for _ in range(WARM_UP + args.steps):
        logits = decoder.forward([int(np.argmax(logits))])
    trace = Path(session.end_profiling())
    summary = summarize(json.loads(trace.read_text()), args.steps)
    summary |= {"model": model.name, "graph": model.graph, "device": model.device.describe(),
                "providers": list(base.get_providers()), "onnxruntime": ort.__version__,
                "prompt_tokens": len(prompt), "trace": trace.name}
    shutil.move(str(trace), args.out / trace.name)
    (args.out / "profile_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def summarize(events: list[dict], steps: int) -> dict:
    """Per-op time over the last ``steps`` runs of the trace (each run one decode step)."""
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    runs = runs[-steps:]
    start, end = runs[0]["ts"], runs[-1]["ts"] + runs[-1]["dur"]
    per_op: dict[str, dict[str, float]] = defaultdict(lambda: {"us": 0.0, "calls": 0})
    providers: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if (event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time")
                or not start <= event["ts"] <= end):
            continue
        op = event["args"].get("op_name", "?")
        per_op[op]["us"] += event["dur"]
        per_op[op]["calls"] += 1
        providers[op].add(event["args"].get("provider", "?"))
    total = sum(v["us"] for v in per_op.values()) or 1.0
    rows = sorted(per_op.items(), key=lambda item: -item[1]["us"])
    return {
        "steps": len(runs),
        "step_ms_median": round(statistics.median(r["dur"] for r in runs) / 1000, 3),
        "step_ms": [round(r["dur"] / 1000, 3) for r in runs],
        "node_ms_per_step": round(total / len(runs) / 1000, 3),
        "nodes_per_step": int(sum(v["calls"] for v in per_op.values()) / len(runs)),
        "per_op": [
            {"op": op, "ms_per_step": round(v["us"] / len(runs) / 1000, 4),
             "calls_per_step": v["calls"] / len(runs), "share": round(v["us"] / total, 4),
             "providers": sorted(providers[op])}
            for op, v in rows
        ],
    }


if __name__ == "__main__":
    raise SystemExit(main())
