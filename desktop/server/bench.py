"""``onnxchat bench --server``: the local server under concurrent streaming clients.

Starts a real ``onnxchat serve`` on loopback, warms it up, then ``--clients`` threads each send
``--requests`` streaming chat requests one after another. Reported: time to first token (from
sending the request to the first text; p50 and p95 over all requests, so it includes the time
spent waiting in the queue) and total tokens per second (all completion tokens over the wall
time of the run).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from desktop.errors import UserError
from desktop.server.launch import ServerProcess

QUESTIONS = (
    "Hi! Can you help me plan a short trip?", "What should I pack for a rainy weekend?",
    "Any tips for taking the train?", "What is a good breakfast before travel?",
    "How do I find a quiet cafe?", "What can I do on a rainy evening?",
)


@dataclass
class Sample:
    """One streamed request: seconds to the first text, seconds in all, tokens generated."""

    first_text_s: float
    total_s: float
    tokens: int


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def stream_once(url: str, question: str, new_tokens: int) -> Sample:
    """Send one streaming chat request and time it."""
    parts = urlsplit(url)
    body = json.dumps({"messages": [{"role": "user", "content": question}],
                       "max_tokens": new_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    started = time.perf_counter()
    first = None
    tokens = 0
    try:
        connection.request("POST", parts.path + "/chat/completions", body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise UserError(f"the server answered {response.status}: "
                            f"{response.read()[:300].decode('utf-8', 'replace')}")
        for line in response:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[len(b"data: "):])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            choices = chunk.get("choices") or [{}]
            if first is None and choices[0].get("delta", {}).get("content"):
                first = time.perf_counter() - started
    finally:
        connection.close()
    total = time.perf_counter() - started
    return Sample(first if first is not None else total, total, tokens)


def run_server_bench(args: argparse.Namespace) -> int:
    if args.clients < 1 or args.requests < 1 or args.new_tokens < 1:
        raise UserError("--clients, --requests and --new-tokens must be at least 1")
    serve_args = ["--device", args.device, "--threads", str(args.threads), "--port", "0",
                  "--queue", str(max(16, args.clients))]
    if args.model:
        serve_args += ["--model", args.model]
    with ServerProcess(serve_args) as server:
        stream_once(server.url, QUESTIONS[0], 4)  # warm-up
        samples: list[Sample] = []
        failures: list[str] = []
        lock = threading.Lock()

        def client(number: int) -> None:
            for i in range(args.requests):
                question = QUESTIONS[(number + i) % len(QUESTIONS)]
                try:
                    sample = stream_once(server.url, question, args.new_tokens)
                except (OSError, UserError) as exc:
                    with lock:
                        failures.append(str(exc))
                    return
                with lock:
                    samples.append(sample)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        model, device = server.model, server.device
    if failures:
        raise UserError(f"{len(failures)} requests failed during the benchmark: {failures[0]}")
    report = summary(samples, wall, args, model, device)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        s = report["server"]
        print(f"{model} on {device} behind `onnxchat serve`: {s['clients']} concurrent "
              f"streaming clients × "
              f"{args.requests} requests, up to {args.new_tokens} new tokens, greedy")
        print(f"time to first token: p50 {s['ttft_ms']['p50']:.0f} ms, p95 "
              f"{s['ttft_ms']['p95']:.0f} ms; total {s['total_tokens_per_s']:.1f} tokens/s "
              f"({s['completion_tokens']} tokens in {s['wall_s']:.1f} s)")
    return 0


def summary(samples: list[Sample], wall: float, args: argparse.Namespace, model: str,
            device: str) -> dict[str, Any]:
    ttft = [s.first_text_s * 1000 for s in samples]
    latency = [s.total_s * 1000 for s in samples]
    tokens = sum(s.tokens for s in samples)
    return {"server": {
        "model": model, "device": device, "threads": args.threads,
        "clients": args.clients, "requests": len(samples), "max_tokens": args.new_tokens,
        "ttft_ms": {"p50": round(percentile(ttft, 0.5), 1),
                    "p95": round(percentile(ttft, 0.95), 1)},
        "latency_ms": {"p50": round(percentile(latency, 0.5), 1),
                       "p95": round(percentile(latency, 0.95), 1)},
        "completion_tokens": tokens, "wall_s": round(wall, 2),
        "total_tokens_per_s": round(tokens / wall, 1)}}
