"""Bringing the database file into a usable state before the store hands out connections.

Several OnnxChat processes may start at once on one data folder (two windows, a window and
terminal chats, ``onnxchat history``). Each takes the opening lock (``chats.sqlite3.lock``)
for the steps below, so only one at a time checks, moves aside, creates or migrates the file;
the migration also re-reads the version under SQLite's write lock, for a process that does
not know the opening lock.

In order: refuse a file from a newer OnnxChat without touching it; move a damaged file aside
and start afresh (the app must open even when its history cannot), leaving a notice in the
new file for whichever front end starts next; back the file up, then migrate it; mark
replies cut off by a crash as interrupted, those whose writer is gone only; take this
store's writer lease.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from desktop.errors import StoreError
from desktop.store import locks
from desktop.store.db import connect, is_damage, store_errors, to_store_error, transaction
from desktop.store.records import INTERRUPTED, STREAMING
from desktop.store.schema import SCHEMA_VERSION, migrate, user_version

#: How long a process waits for another one to finish opening (which may include migrating
#: or checking a large history) before giving up with a message.
OPENING_TIMEOUT_S = 60.0


def lock_path(path: Path) -> Path:
    """The opening lock beside the database file ``path``."""
    return path.with_name(path.name + ".lock")


def writers_folder(path: Path) -> Path:
    """The folder of writer leases beside the database file ``path``."""
    return path.with_name(path.name + ".writers")


def prepare(path: Path, busy_timeout_s: float) -> locks.WriterLease:
    """Make ``path`` a healthy database of the current schema; returns this store's lease.

    A damaged file moved aside leaves its notice in the new file (``notices``), to be shown
    by whichever front end takes it first.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the chat history folder {path.parent}: {exc.strerror}. "
            "Choose a writable folder with --data-dir or ONNXCHAT_DATA_DIR."
        ) from exc
    _refuse_newer(path, _header_version(path))  # before a lock file appears beside it
    with locks.hold(lock_path(path), OPENING_TIMEOUT_S, "open the chat history"):
        notice = None
        if path.exists() and not _healthy(path, busy_timeout_s):
            moved = _move_aside(path)
            notice = (f"The chat history file was damaged; it was moved to {moved} and a new, "
                      "empty history was started.")
        with store_errors("open the chat history", path):
            conn = connect(path, busy_timeout_s)
            try:
                _bring_up_to_date(conn, path, notice)
                _recover(conn, writers_folder(path))
            finally:
                conn.close()
        locks.sweep(writers_folder(path))
        return locks.WriterLease(writers_folder(path))


def _bring_up_to_date(conn: sqlite3.Connection, path: Path, notice: str | None) -> None:
    version = user_version(conn)
    _refuse_newer(path, version)
    if 0 < version < SCHEMA_VERSION:
        _backup(conn, path, version)  # before anything is written to the file
    conn.execute("PRAGMA journal_mode = WAL")
    if version < SCHEMA_VERSION or notice:
        with transaction(conn):
            _refuse_newer(path, migrate(conn))
            if notice:
                conn.execute("DELETE FROM notices")
                conn.execute("INSERT INTO notices (text) VALUES (?)", (notice,))


def _recover(conn: sqlite3.Connection, writers: Path) -> None:
    """Mark ``interrupted`` the replies left ``streaming`` by a store that is gone.

    A reply whose writer still holds its lease is being written right now by another
    window or terminal and is left alone. Nothing is written when nothing needs it.
    """
    rows = conn.execute(
        "SELECT m.id, w.writer FROM messages m LEFT JOIN reply_writers w ON w.message_id = m.id "
        "WHERE m.state = ?", (STREAMING,)).fetchall()
    gone = [mid for mid, writer in rows if writer is None or locks.writer_gone(writers, writer)]
    if not gone:
        return
    with transaction(conn):
        for message_id in gone:
            # Re-checked under the write lock: the writer may have ended it meanwhile.
            conn.execute("UPDATE messages SET state = ? WHERE id = ? AND state = ?",
                         (INTERRUPTED, message_id, STREAMING))
            conn.execute("DELETE FROM reply_writers WHERE message_id = ?", (message_id,))


def _healthy(path: Path, busy_timeout_s: float) -> bool:
    """Whether an existing file passes ``quick_check``; a newer schema is refused here.

    The check reads through a read-only connection so that nothing, not even a checkpoint of
    a leftover WAL file, changes a file this version must not or cannot use.
    """
    try:
        conn = connect(path, busy_timeout_s, read_only=True)
        try:
            _refuse_newer(path, user_version(conn))
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if is_damage(exc):
            return False
        raise to_store_error(exc, "open the chat history", path) from exc
    return rows == [("ok",)]


def _header_version(path: Path) -> int:
    """``user_version`` read from the file header (bytes 60-63), without opening the file.

    Even a read-only SQLite connection leaves ``-wal`` and ``-shm`` files beside a WAL
    database; a file from a newer version must not gain even those. A missing, empty or
    non-SQLite file gives 0 (the quick check decides about the latter).
    """
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StoreError(f"Cannot read the chat history file {path}: {exc.strerror}.") from exc
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return 0
    return int.from_bytes(header[60:64], "big", signed=True)


def _refuse_newer(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer OnnxChat (history version {version}; this one "
            f"reads up to {SCHEMA_VERSION}). Update OnnxChat, or start a separate history "
            "with --data-dir."
        )


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _free_name(path: Path, suffix: str) -> Path:
    target = path.with_name(f"{path.name}.{suffix}")
    count = 1
    while target.exists():
        count += 1
        target = path.with_name(f"{path.name}.{suffix}-{count}")
    return target


def _move_aside(path: Path) -> Path:
    """Rename the file and its WAL and shared-memory files to ``<name>.corrupt-<time>``.

    The WAL file goes too: left behind, it could be replayed into the fresh database.
    """
    target = _free_name(path, f"corrupt-{_stamp()}")
    try:
        os.replace(path, target)
        for side in ("-wal", "-shm"):
            source = path.with_name(path.name + side)
            if source.exists():
                os.replace(source, target.with_name(target.name + side))
    except OSError as exc:
        raise StoreError(
            f"The chat history file {path} is damaged and cannot be moved aside "
            f"({exc.strerror}); move or delete it yourself, then start OnnxChat again."
        ) from exc
    return target


def _backup(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """A consistent copy (SQLite backup API) kept beside the file before it is migrated."""
    target = _free_name(path, f"v{version}-backup-{_stamp()}")
    try:
        copy = sqlite3.connect(target)
        try:
            conn.backup(copy)
        finally:
            copy.close()
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    return target
