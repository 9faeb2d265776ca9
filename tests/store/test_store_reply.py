"""Streaming replies: commit pacing, the three endings, and a process killed mid-reply."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from desktop.store import (
    CANCELLED,
    COMMIT_INTERVAL_S,
    COMPLETE,
    ERROR,
    INTERRUPTED,
    STREAMING,
    ChatStore,
    ReplyStats,
    Repro,
)


class Clock:
    """A clock the test moves by hand, to check time-based commits without sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_user_message_and_empty_reply_are_committed_first(data_dir: Path, store: ChatStore,
                                                          repro: Repro) -> None:
    chat = store.create_conversation()
    store.add_message(chat.id, "user", "hi")
    writer = store.begin_reply(chat.id, repro)
    # Another store on the same file (as another process would) sees both already, and
    # leaves the reply streaming: its writer is alive.
    with ChatStore.open(data_dir) as other:
        user, reply = other.messages(chat.id)
    assert (user.text, user.state) == ("hi", COMPLETE)
    assert (reply.id, reply.text, reply.state) == (writer.message_id, "", STREAMING)
    assert reply.repro == repro


def test_append_commits_at_most_once_per_interval(store: ChatStore, repro: Repro) -> None:
    assert COMMIT_INTERVAL_S <= 0.2  # the most of a reply a kill -9 may lose
    chat = store.create_conversation()
    clock = Clock()
    writer = store.begin_reply(chat.id, repro, clock=clock, commit_interval_s=1.0)

    def stored() -> str:
        return store.get_message(writer.message_id).text

    assert writer.append("Once") is False
    clock.now += 0.5
    assert writer.append(" upon") is False
    assert stored() == ""
    clock.now += 0.5
    assert writer.append(" a") is True
    assert stored() == "Once upon a"
    clock.now += 0.9
    assert writer.append(" time") is False
    assert stored() == "Once upon a"
    clock.now += 0.2
    assert writer.append(",") is True
    assert stored() == "Once upon a time,"
    assert writer.text == "Once upon a time,"

    writer.append(" the end.")
    stats = ReplyStats(completion_tokens=7, first_token_s=0.1, total_s=0.7)
    writer.finish(stats, "eos")
    reply = store.get_message(writer.message_id)
    assert (reply.text, reply.state, reply.stats) == ("Once upon a time, the end.", COMPLETE,
                                                      stats)
    assert reply.stats.tokens_per_s == pytest.approx(10.0)
    assert reply.repro.stop_reason == "eos"
    assert reply.repro.seed == repro.seed
    with pytest.raises(RuntimeError, match="already ended"):
        writer.append("more")


def test_cancel_and_fail_keep_the_partial_text(store: ChatStore, repro: Repro) -> None:
    chat = store.create_conversation()
    store.add_message(chat.id, "user", "go")
    cancelled = store.begin_reply(chat.id, repro)
    cancelled.append("half a")
    cancelled.cancel()
    failed = store.begin_reply(chat.id, repro, replacing=cancelled.message_id)
    failed.append("broken")
    failed.fail("the model ran out of memory")

    first = store.get_message(cancelled.message_id)
    assert (first.text, first.state, first.repro.stop_reason) == ("half a", CANCELLED,
                                                                  "cancelled")
    second = store.get_message(failed.message_id)
    assert (second.text, second.state, second.error) == ("broken", ERROR,
                                                         "the model ran out of memory")
    assert second.repro.stop_reason == "error"


_STREAMING_CHILD = textwrap.dedent("""
    import sys, time
    from desktop.store import ChatStore, Repro
    store = ChatStore.open(sys.argv[1])
    chat = store.create_conversation("Crash")
    store.add_message(chat.id, "user", "tell me a long story")
    repro = Repro(model="m", manifest_sha256="0" * 64, device="cpu", sampling={},
                  seed=7, prompt_tokens=12)
    writer = store.begin_reply(chat.id, repro, commit_interval_s=0.05)
    announced = False
    count = 0
    while True:
        count += 1
        if writer.append(f"word{count} ") and not announced:
            print(chat.id, writer.message_id, flush=True)
            announced = True
        time.sleep(0.002)
""")


def test_killed_mid_reply_leaves_an_interrupted_partial_reply(data_dir: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _STREAMING_CHILD, str(data_dir)],
                             stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parents[2])
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=60), "the child never committed a chunk"
        chat_id, reply_id = child.stdout.readline().split()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    conn = sqlite3.connect(data_dir / "chats.sqlite3")
    try:
        state, = conn.execute("SELECT state FROM messages WHERE id = ?", (reply_id,)).fetchone()
    finally:
        conn.close()
    assert state == STREAMING  # as the process left it ...
    # ... and the next open marks it interrupted, keeping the text written so far.
    with ChatStore.open(data_dir) as store:
        user, reply = store.messages(chat_id)
        assert (user.role, user.text, user.state) == ("user", "tell me a long story", COMPLETE)
        assert reply.id == reply_id
        assert reply.state == INTERRUPTED
        assert reply.text.startswith("word1 word2 ")
        assert reply.repro.stop_reason is None
