"""Bringing the database file into a usable state before the store hands out connections.

In order: refuse a file from a newer OnnxChat without touching it; move a damaged file aside
and start afresh (the app must open even when its history cannot); back the file up, then
migrate it; mark replies cut off by a crash as interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from desktop.errors import StoreError
from desktop.store.db import connect, is_damage, store_errors, to_store_error
from desktop.store.records import INTERRUPTED, STREAMING
from desktop.store.schema import SCHEMA_VERSION, migrate, user_version


def prepare(path: Path, busy_timeout_s: float, recover: bool) -> str | None:
    """Make ``path`` a healthy database of the current schema.

    Returns a notice for the user when a damaged file was moved aside, else ``None``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the chat history folder {path.parent}: {exc.strerror}. "
            "Choose a writable folder with --data-dir or ONNXCHAT_DATA_DIR."
        ) from exc
    notice = None
    _refuse_newer(path, _header_version(path))
    if path.exists() and not _healthy(path, busy_timeout_s):
        moved = _move_aside(path)
        notice = (f"The chat history file was damaged; it was moved to {moved} and a new, "
                  "empty history was started.")
    with store_errors("open the chat history", path):
        conn = connect(path, busy_timeout_s)
        try:
            version = user_version(conn)
            _refuse_newer(path, version)
            if 0 < version < SCHEMA_VERSION:
                _backup(conn, path, version)  # before anything is written to the file
            conn.execute("PRAGMA journal_mode = WAL")
            if version < SCHEMA_VERSION:
                migrate(conn, version)
            if recover:
                conn.execute("UPDATE messages SET state = ? WHERE state = ?",
                             (INTERRUPTED, STREAMING))
        finally:
            conn.close()
    return notice


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
