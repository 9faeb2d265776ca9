"""Store figures for the benchmark report: opening a long conversation, committing a reply.

The conversation is built through the JSON import (one transaction) so that setting up
10 000 messages takes well under a second, then ``messages()`` is timed as the window calls
it when a conversation is clicked. A streaming reply is committed every
:data:`COMMIT_INTERVAL_S`; :func:`bench_reply_commits` times one commit of the text so far
at several reply lengths, which bounds what committing costs decoding: one commit per
interval at most.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from desktop.store.chat_store import ChatStore
from desktop.store.exchange import FORMAT, FORMAT_VERSION
from desktop.store.records import Repro, dump_json, format_time, new_id
from desktop.store.reply import COMMIT_INTERVAL_S

#: Reply lengths (characters) at which a commit is timed: a short answer to a whole context.
REPLY_LENGTHS = (1_000, 16_000, 64_000, 256_000)


def bench_open_conversation(n_messages: int = 10_000, repeats: int = 7) -> dict[str, Any]:
    """Median, best and worst seconds of loading an ``n_messages`` long conversation."""
    with tempfile.TemporaryDirectory(prefix="onnxchat-bench-") as folder:
        store = ChatStore.open(folder)
        try:
            conversation_id = store.import_json(_history(n_messages)).imported[0]
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                loaded = store.messages(conversation_id)
                times.append(time.perf_counter() - start)
            if len(loaded) != n_messages:
                raise RuntimeError(f"loaded {len(loaded)} of {n_messages} messages")
        finally:
            store.close()
    return {"n_messages": n_messages, "repeats": repeats, "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times)}


def bench_reply_commits(lengths: tuple[int, ...] = REPLY_LENGTHS,
                        repeats: int = 30) -> dict[str, Any]:
    """Median seconds of one commit of a streaming reply at each length, and the share of
    generation time that costs at one commit per :data:`COMMIT_INTERVAL_S`."""
    repro = Repro(model="bench", manifest_sha256="0" * 64, device="cpu", sampling={}, seed=0,
                  prompt_tokens=100)
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnxchat-bench-") as folder:
        store = ChatStore.open(folder)
        try:
            chat = store.create_conversation("Benchmark")
            store.add_message(chat.id, "user", "Write at length.")
            writer = store.begin_reply(chat.id, repro, commit_interval_s=0.0)
            words = "a typical word of a streaming reply "
            for length in lengths:
                writer.append(words * ((length - len(writer.text)) // len(words)))
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    writer.append(".")  # commits the whole text so far
                    times.append(time.perf_counter() - start)
                median = statistics.median(times)
                rows.append({"reply_chars": length, "commit_ms": round(median * 1000, 3),
                             "share_of_generation": round(median / COMMIT_INTERVAL_S, 5)})
            writer.cancel()
        finally:
            store.close()
    return {"commit_interval_s": COMMIT_INTERVAL_S, "journal": "wal",
            "synchronous": "normal", "repeats": repeats, "lengths": rows}


def _history(n_messages: int) -> bytes:
    """A history file with one conversation: a chain of alternating user/assistant turns."""
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    messages = []
    parent = None
    for index in range(n_messages):
        user = index % 2 == 0
        message_id = new_id()
        messages.append({
            "id": message_id, "parent_id": parent, "role": "user" if user else "assistant",
            "text": f"Message {index}: " + "some words of a typical chat turn " * 6,
            "created": format_time(start + timedelta(seconds=index)), "state": "complete",
            "stats": None if user else {"completion_tokens": 60, "first_token_s": 0.05,
                                        "total_s": 1.2},
            "repro": None if user else {
                "model": "bench", "manifest_sha256": "0" * 64, "device": "cpu",
                "sampling": {"temperature": 0.7}, "seed": index, "prompt_tokens": 100 + index,
                "context_length": 8192, "dropped_messages": [], "stop_reason": "eos"},
            "error": None,
        })
        parent = message_id
    conversation = {
        "id": new_id(), "title": "Benchmark", "created": format_time(start),
        "updated": format_time(start + timedelta(seconds=n_messages)), "model": "bench",
        "system_prompt": "", "sampling": {}, "active_leaf_id": parent, "messages": messages,
    }
    document = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "conversations": [conversation]}
    return dump_json(document).encode("utf-8")
