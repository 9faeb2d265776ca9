"""Load: 16 concurrent streaming clients, 5 requests each, against one server. Every stream is
complete and well formed, carries its own id, and has exactly the text the same request gets
alone (each request asks with its own seed, so text from another request would not match).
Nothing is lost, the server stays up, and its memory stays bounded."""

from __future__ import annotations

import json
import threading

import pytest
from server_harness import drain, request, rss_mb, sse_events, wait_event

pytestmark = pytest.mark.slow

CLIENTS = 16
REQUESTS = 5
#: A loose bound on the server's growth over the whole run: a leak per request would pass it
#: only if each leaked less than ~0.6 MB, and a copy of the model per client would not.
RSS_GROWTH_MB = 100


def body(client: int, number: int, stream: bool) -> dict:
    return {"messages": [{"role": "user", "content": f"Say something about the number "
                          f"{client}."}],
            "max_tokens": 8, "temperature": 1.0, "top_p": 1.0, "seed": client * 100 + number,
            "stream": stream, "stream_options": {"include_usage": True} if stream else None}


def check_stream(raw: bytes) -> tuple[str, str, dict]:
    """(id, text, usage) of a complete, well-formed chat stream."""
    events = sse_events(raw)
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[:-1] == [None] * (len(finishes) - 1)
    assert finishes[-1] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and all(c["usage"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1])
    return chunks[0]["id"], text, chunks[-1]["usage"]


def test_sixteen_streaming_clients_get_their_own_complete_answers(server):
    drain(server)
    rss_before = rss_mb(server.pid)
    results: dict[tuple[int, int], tuple[str, str, dict]] = {}
    failures: list[str] = []

    def client(number: int) -> None:
        try:
            for i in range(REQUESTS):
                reply = request(server.url + "/chat/completions", "POST",
                                body(number, i, stream=True))
                assert reply.status == 200, reply.body[:300]
                assert reply.headers["content-type"].startswith("text/event-stream")
                results[number, i] = check_stream(reply.body)
        except Exception as exc:
            failures.append(f"client {number}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    assert failures == []
    assert len(results) == CLIENTS * REQUESTS
    assert len({result[0] for result in results.values()}) == CLIENTS * REQUESTS
    counts = wait_event(server, lambda e: e.get("served", 0) >= CLIENTS * REQUESTS
                        and e.get("running") == 0 and e.get("waiting") == 0)
    assert counts["refused"] == counts["failed"] == counts["cancelled"] == 0
    rss_after = rss_mb(server.pid)
    print(f"\nserver RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after "
          f"{CLIENTS}×{REQUESTS} streaming requests")
    assert rss_after < rss_before + RSS_GROWTH_MB

    # The same requests one at a time, not streamed: the same text, token for token.
    for (number, i), (_, text, use) in sorted(results.items()):
        alone = request(server.url + "/chat/completions", "POST", body(number, i, stream=False))
        answer = alone.json()
        assert answer["choices"][0]["message"]["content"] == text, (number, i)
        assert answer["usage"] == use
    assert len({text for _, text, _ in results.values()}) > CLIENTS * REQUESTS // 2
    assert server.process.poll() is None
    assert json.loads(request(server.url + "/models").body)["data"]
