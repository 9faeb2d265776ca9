"""Schema versions: forward migrations from every earlier version, backups, newer files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from desktop.errors import StoreError
from desktop.store import INTERRUPTED, SCHEMA_VERSION, ChatStore
from desktop.store.schema import MIGRATIONS, V1

# Rows as version 1 wrote them; every later version must still read them.
_V1_ROWS = """
INSERT INTO conversations VALUES ('c1', 'Old chat', '2024-05-01T10:00:00.000000Z',
    '2024-05-01T10:01:00.000000Z', 'tiny', 'Be kind.', '{"temperature":0.5}', NULL);
INSERT INTO messages VALUES (1, 'm1', 'c1', NULL, 'user', 'Where do penguins live?',
    '2024-05-01T10:00:00.000000Z', 'complete', NULL);
INSERT INTO messages VALUES (2, 'm2', 'c1', 'm1', 'assistant', 'Mostly in Antarctica.',
    '2024-05-01T10:00:30.000000Z', 'complete',
    '{"completion_tokens":5,"first_token_s":0.1,"total_s":0.5}');
INSERT INTO messages VALUES (3, 'm3', 'c1', 'm2', 'user', 'And puffins?',
    '2024-05-01T10:01:00.000000Z', 'complete', NULL);
INSERT INTO messages VALUES (4, 'm4', 'c1', 'm3', 'assistant', 'Puffins nest on',
    '2024-05-01T10:01:00.500000Z', 'streaming', NULL);
UPDATE conversations SET active_leaf_id = 'm4' WHERE id = 'c1';
"""


def _write_version(path: Path, version: int) -> None:
    """A real file of an earlier schema version, built with that version's own DDL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    for step in range(1, version + 1):
        conn.executescript(MIGRATIONS[step])
        if step == 1:
            conn.executescript(_V1_ROWS)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_version_1_is_the_base_schema() -> None:
    # The file the v1 test builds really is version 1: no search index, no repro columns.
    assert MIGRATIONS[1] == V1
    assert "fts5" not in V1 and "repro" not in V1
    assert SCHEMA_VERSION == 3


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_migrates_from_every_earlier_version(data_dir: Path, version: int) -> None:
    path = data_dir / "chats.sqlite3"
    _write_version(path, version)
    with ChatStore.open(data_dir) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if version == 0:
            assert store.list_conversations() == []
            return
        old = store.get_conversation("c1")
        assert (old.title, old.model, old.system_prompt, old.sampling) == (
            "Old chat", "tiny", "Be kind.", {"temperature": 0.5})
        branch = store.messages("c1")
        assert [m.id for m in branch] == ["m1", "m2", "m3", "m4"]
        assert branch[1].stats.completion_tokens == 5
        assert branch[1].repro is None  # version 1 did not record it
        assert branch[3].state == INTERRUPTED
        # The search index covers the messages written before it existed, and new ones.
        assert [h.message_id for h in store.search("penguins")] == ["m1"]
        store.add_message("c1", "user", "penguins again")
        assert len(store.search("penguins")) == 2


def test_backup_is_a_consistent_copy_of_the_old_file(data_dir: Path) -> None:
    path = data_dir / "chats.sqlite3"
    _write_version(path, 1)
    with ChatStore.open(data_dir):
        pass
    backups = list(data_dir.glob("chats.sqlite3.v1-backup-*"))
    assert len(backups) == 1
    copy = sqlite3.connect(backups[0])
    try:
        assert copy.execute("PRAGMA user_version").fetchone()[0] == 1
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT id, state FROM messages ORDER BY seq").fetchall() == [
            ("m1", "complete"), ("m2", "complete"), ("m3", "complete"), ("m4", "streaming")]
    finally:
        copy.close()
    # A current file is not backed up again.
    with ChatStore.open(data_dir):
        pass
    assert len(list(data_dir.glob("chats.sqlite3.v*-backup-*"))) == 1


def test_failed_migration_leaves_the_old_version(data_dir: Path) -> None:
    path = data_dir / "chats.sqlite3"
    _write_version(path, 1)
    # A table in the way makes step 2 fail halfway; nothing of it may remain.
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE messages_fts (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="Cannot open the chat history"):
        ChatStore.open(data_dir)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [row[1] for row in conn.execute("PRAGMA table_info(messages)")]
        assert "repro" not in columns
    finally:
        conn.close()


def test_newer_file_is_refused_and_untouched(data_dir: Path) -> None:
    path = data_dir / "chats.sqlite3"
    _write_version(path, SCHEMA_VERSION)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE from_the_future (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}

    with pytest.raises(StoreError, match=f"newer OnnxChat .*version {SCHEMA_VERSION + 1}"):
        ChatStore.open(data_dir)
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before
