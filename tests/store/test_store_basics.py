"""Conversations, the message tree, branches and limits, on a real SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.errors import UserError
from desktop.store import ChatStore, NotFoundError, ReplyStats, Repro


def test_store_imports_without_qt() -> None:
    code = ("import sys; sys.modules['PySide6'] = None; "
            "import desktop.store, desktop.store.bench, desktop.history_cmd")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_file_settings(store: ChatStore, data_dir: Path) -> None:
    assert store.path == data_dir / "chats.sqlite3"
    assert store.take_notice() is None
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_conversation_lifecycle(store: ChatStore) -> None:
    first = store.create_conversation("First", model="m1", system_prompt="Be brief.",
                                      sampling={"temperature": 0.2})
    second = store.create_conversation()
    assert second.title == "New chat"
    assert store.get_conversation(first.id) == first
    store.add_message(first.id, "user", "hello")
    assert [c.id for c in store.list_conversations()] == [first.id, second.id]

    renamed = store.rename_conversation(second.id, "Second")
    assert renamed.title == "Second" and renamed.updated == second.updated
    updated = store.update_conversation(first.id, model="m2", sampling={"top_k": 5})
    assert (updated.model, updated.system_prompt, updated.sampling) == ("m2", "Be brief.",
                                                                        {"top_k": 5})

    store.delete_conversation(first.id)
    with pytest.raises(NotFoundError):
        store.get_conversation(first.id)
    with pytest.raises(NotFoundError):
        store.messages(first.id)
    assert store._conn().execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert store.messages(second.id) == []


def test_reopen_keeps_everything(data_dir: Path, repro: Repro) -> None:
    with ChatStore.open(data_dir) as store:
        chat = store.create_conversation("Kept")
        store.add_message(chat.id, "user", "question")
        writer = store.begin_reply(chat.id, repro)
        writer.append("answer")
        writer.finish(_stats(), "eos")
        before = store.messages(chat.id)
    with ChatStore.open(data_dir) as store:
        assert store.messages(chat.id) == before
        assert before[1].repro.stop_reason == "eos"


def test_edit_and_regenerate_keep_old_branches(store: ChatStore, repro: Repro) -> None:
    chat = store.create_conversation()
    question = store.add_message(chat.id, "user", "What is 2+2?")
    first = store.begin_reply(chat.id, repro)
    first.finish(_stats(), "eos")
    # Regenerate: a sibling reply, now shown; the old one is kept.
    second = store.begin_reply(chat.id, repro, replacing=first.message_id)
    second.append("Four.")
    second.finish(_stats(), "eos")
    assert [m.text for m in store.messages(chat.id)] == ["What is 2+2?", "Four."]
    assert [m.id for m in store.siblings(first.message_id)] == [first.message_id,
                                                                 second.message_id]
    # Edit the question: a sibling root, shown with nothing after it.
    edited = store.edit_message(question.id, "What is 3+3?")
    assert edited.parent_id is None
    assert [m.text for m in store.messages(chat.id)] == ["What is 3+3?"]
    assert [m.id for m in store.siblings(edited.id)] == [question.id, edited.id]

    # Back to the original question: its newest reply is shown again.
    branch = store.select_branch(question.id)
    assert [m.id for m in branch] == [question.id, second.message_id]
    branch = store.select_branch(first.message_id)
    assert [m.id for m in branch] == [question.id, first.message_id]
    assert store.get_conversation(chat.id).active_leaf_id == first.message_id


def test_delete_message_moves_the_branch(store: ChatStore, repro: Repro) -> None:
    chat = store.create_conversation()
    question = store.add_message(chat.id, "user", "q")
    old = store.begin_reply(chat.id, repro)
    old.finish(_stats(), "eos")
    new = store.begin_reply(chat.id, repro, replacing=old.message_id)
    new.finish(_stats(), "eos")
    follow_up = store.add_message(chat.id, "user", "more")

    store.delete_message(new.message_id)  # takes the follow-up with it
    with pytest.raises(NotFoundError):
        store.get_message(follow_up.id)
    assert [m.id for m in store.messages(chat.id)] == [question.id, old.message_id]
    store.delete_message(old.message_id)
    assert [m.id for m in store.messages(chat.id)] == [question.id]
    store.delete_message(question.id)
    assert store.messages(chat.id) == []
    assert store.get_conversation(chat.id).active_leaf_id is None


def _chain(length: int, name: str = "chain") -> bytes:
    """A history file holding one conversation that is a chain of ``length`` messages."""
    messages, parent = [], None
    for index in range(length):
        message_id = f"{name}-{index}"
        messages.append({"id": message_id, "parent_id": parent, "role": "user",
                         "text": str(index), "created": "2025-01-01T00:00:00.000000Z",
                         "state": "complete", "stats": None, "repro": None, "error": None})
        parent = message_id
    conversation = {"id": name, "title": name, "created": "2025-01-01T00:00:00.000000Z",
                    "updated": "2025-01-01T00:00:00.000000Z", "model": None,
                    "system_prompt": "", "sampling": {}, "active_leaf_id": parent,
                    "messages": messages}
    return json.dumps({"format": "onnxchat-history", "format_version": 1,
                       "conversations": [conversation]}).encode()


def test_deep_chains_delete_without_recursion_limits(store: ChatStore) -> None:
    # SQLite stops nested cascades at depth 1000; a long chat is deeper than that.
    store.import_json(_chain(3000))
    assert len(store.messages("chain")) == 3000
    store.delete_message("chain-1")
    assert [m.id for m in store.messages("chain")] == ["chain-0"]
    store.delete_message("chain-0")
    assert store.messages("chain") == []
    store.import_json(_chain(3000, "other"))
    store.delete_conversation("other")
    assert store._conn().execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_unknown_ids_and_limits(store: ChatStore) -> None:
    chat = store.create_conversation()
    with pytest.raises(NotFoundError, match="history list"):
        store.add_message("nope", "user", "x")
    with pytest.raises(NotFoundError):
        store.edit_message("nope", "x")
    with pytest.raises(NotFoundError):
        store.delete_conversation("nope")
    with pytest.raises(NotFoundError):
        store.rename_conversation("nope", "t")
    with pytest.raises(UserError, match="1001 characters long, over the 1000"):
        store.create_conversation("t" * 1001)
    with pytest.raises(UserError, match="over the 10 MB limit"):
        store.add_message(chat.id, "user", "x" * 10_000_001)
    assert store.messages(chat.id) == []


def _stats() -> ReplyStats:
    return ReplyStats(completion_tokens=3, first_token_s=0.05, total_s=0.25)
