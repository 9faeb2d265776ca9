"""``onnxchat soak``: long-session checks that are too slow for the test suite.

200 turns with the context forced to overflow on every turn, 100 consecutive replies with
the resident set measured at the start and the end, one 4,000-token reply, and 20 model
switches. It prints what happened and exits non-zero if memory grew past the stated bound or
anything failed, so it can run by hand or in a nightly job.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from typing import Any

from desktop.engine import ChatEngine, SamplingSettings, load_model, resolve_model
from desktop.errors import UserError

GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0)
#: Growth of the resident set over 100 replies that counts as a leak.
RSS_GROWTH_BOUND_MB = 64.0


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; 0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def overflow_turns(engine: ChatEngine, turns: int, context: int) -> dict[str, Any]:
    """Chat ``turns`` times with a window of ``context`` tokens so old turns drop every turn."""
    object.__setattr__(engine.model.manifest, "context_length", context)
    history: list[dict[str, str]] = []
    dropped_turns = 0
    started = time.perf_counter()
    for i in range(turns):
        history.append({"role": "user", "content": f"Turn {i}: say something about rivers."})
        stream = engine.reply(history, GREEDY.with_changes(max_new_tokens=24))
        reply = "".join(stream)
        dropped_turns += bool(stream.plan.dropped)
        history.append({"role": "assistant", "content": reply})
    return {"turns": turns, "context": context, "turns_with_dropped_history": dropped_turns,
            "seconds": round(time.perf_counter() - started, 1)}


def repeated_replies(engine: ChatEngine, count: int) -> dict[str, Any]:
    gc.collect()
    start = current_rss_mb()
    for i in range(count):
        engine.reset()
        "".join(engine.reply([{"role": "user", "content": f"Reply number {i}."}],
                             GREEDY.with_changes(max_new_tokens=32)))
    gc.collect()
    end = current_rss_mb()
    return {"replies": count, "rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1),
            "growth_mb": round(end - start, 1), "bound_mb": RSS_GROWTH_BOUND_MB,
            "ok": end - start <= RSS_GROWTH_BOUND_MB}


def long_reply(engine: ChatEngine, tokens: int) -> dict[str, Any]:
    engine.reset()
    stream = engine.reply([{"role": "user", "content": "Write a very long story."}],
                          SamplingSettings(temperature=0.8, max_new_tokens=tokens, seed=1,
                                           stop_strings=()))
    text = "".join(stream)
    return {"requested": tokens, "generated": stream.stats.new_tokens,
            "stop_reason": stream.stats.stop_reason,
            "decode_tok_s": round(stream.stats.decode_tokens_per_s, 1), "chars": len(text)}


def model_switches(folder: Path, count: int, device: str, threads: int | None) -> dict[str, Any]:
    """Load, use and drop the model ``count`` times. The resident set is compared between the
    first switch (the allocator keeps freed pages for reuse) and the last: a leak grows it."""
    times = []
    start = end = 0.0
    for n in range(count):
        model = load_model(folder, device=device, threads=threads)
        times.append(model.load_seconds)
        "".join(ChatEngine(model).reply([{"role": "user", "content": "Hi"}],
                                        GREEDY.with_changes(max_new_tokens=4)))
        del model
        gc.collect()
        end = current_rss_mb()
        if n == 0:
            start = end
    return {"switches": count, "median_load_s": round(sorted(times)[len(times) // 2], 3),
            "rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1),
            "ok": end - start <= RSS_GROWTH_BOUND_MB}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("soak", help="long-session checks (minutes)")
    parser.add_argument("--model", help="model name or folder (default: the default model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--replies", type=int, default=100)
    parser.add_argument("--long-reply", type=int, default=4000)
    parser.add_argument("--switches", type=int, default=20)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if min(args.turns, args.replies, args.long_reply, args.switches) < 1:
        raise UserError("--turns, --replies, --long-reply and --switches must be at least 1")
    folder = resolve_model(args.model)
    model = load_model(folder, device=args.device, threads=args.threads)
    report: dict[str, Any] = {"model": model.name, "device": model.device.describe()}
    report["repeated_replies"] = repeated_replies(ChatEngine(model), args.replies)
    report["long_reply"] = long_reply(ChatEngine(model), args.long_reply)
    report["model_switches"] = model_switches(folder, args.switches, args.device, args.threads)
    # A 256-token window overflows from the third turn on, so old turns drop every turn.
    report["overflow_turns"] = overflow_turns(ChatEngine(model), args.turns, 256)
    print(json.dumps(report, indent=2))
    ok = report["repeated_replies"]["ok"] and report["model_switches"]["ok"]
    return 0 if ok else 1
