"""The database schema and its forward migrations.

``PRAGMA user_version`` holds the schema version. ``MIGRATIONS[v]`` turns a version ``v - 1``
database into version ``v`` (version 0 is an empty file), so a store of any earlier version is
brought up to date by running the missing steps in order, in one transaction. Released steps
are never edited: a change to the schema is a new step.

Version 1: conversations and the message tree.
Version 2: full-text search over message text (FTS5, kept in sync by triggers), and the
reproducibility record and error text of replies.
Version 3: several processes at once. ``reply_writers`` names the open store writing each
reply still ``streaming`` (see :mod:`desktop.store.locks`), so that only replies whose writer
is gone are marked interrupted; ``notices`` holds a message for the next front end to start
(a damaged file was moved aside). A reply is indexed for search once it stops streaming
rather than at every commit while it grows: re-indexing the whole text each time would make
frequent commits cost more the longer the reply.

``messages.seq`` is the local insertion order: it orders siblings (timestamps can tie) and is
the row the search index points at. It is storage, not data, and is not exported.

A message's subtree is deleted by the store in one statement rather than by an ``ON DELETE
CASCADE`` on ``parent_id``: SQLite runs cascades as nested triggers, which stop at a depth of
1000, and a long chat is a chain deeper than that.
"""

from __future__ import annotations

import sqlite3

V1 = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    model TEXT,
    system_prompt TEXT NOT NULL DEFAULT '',
    sampling TEXT NOT NULL DEFAULT '{}',
    active_leaf_id TEXT REFERENCES messages(id) ON DELETE SET NULL
);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    parent_id TEXT REFERENCES messages(id),
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    text TEXT NOT NULL,
    created TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('complete', 'streaming', 'interrupted', 'cancelled', 'error')),
    stats TEXT
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, seq);
CREATE INDEX messages_by_parent ON messages(parent_id, seq);
CREATE INDEX messages_by_state ON messages(state);
CREATE INDEX conversations_by_leaf ON conversations(active_leaf_id);
"""

V2 = """
ALTER TABLE messages ADD COLUMN repro TEXT;
ALTER TABLE messages ADD COLUMN error TEXT;
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='seq');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text);
END;
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
"""

V3 = """
CREATE TABLE reply_writers (
    message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    writer TEXT NOT NULL
);
CREATE TABLE notices (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL
);
INSERT INTO messages_fts(messages_fts, rowid, text)
    SELECT 'delete', seq, text FROM messages WHERE state = 'streaming';
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.state != 'streaming' BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.state != 'streaming' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, state ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text)
        SELECT 'delete', old.seq, old.text WHERE old.state != 'streaming';
    INSERT INTO messages_fts(rowid, text)
        SELECT new.seq, new.text WHERE new.state != 'streaming';
END;
"""

MIGRATIONS: dict[int, str] = {1: V1, 2: V2, 3: V3}
SCHEMA_VERSION = max(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to :data:`SCHEMA_VERSION`; returns the version it had.

    Call it inside a write transaction (``BEGIN IMMEDIATE``): the version is read under the
    write lock, so a second process that read the old version before the first one migrated
    finds the work done instead of creating the tables again, and the steps commit together
    or not at all. ``executescript`` would commit on its own, so each step's statements run
    one by one.
    """
    if not conn.in_transaction:
        raise RuntimeError("migrate() must run inside a write transaction")
    from_version = user_version(conn)
    for version in range(from_version + 1, SCHEMA_VERSION + 1):
        for statement in _statements(MIGRATIONS[version]):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    return from_version


def _statements(script: str) -> list[str]:
    """Split a script into statements; a trigger body's inner ``;`` stays with its trigger."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete statement in migration: {current.strip()[:60]}")
    return statements
