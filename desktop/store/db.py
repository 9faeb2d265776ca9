"""SQLite connections: settings, transactions, one connection per thread, errors for people.

The window reads on its own thread while a worker writes the reply being generated. SQLite in
WAL mode lets one writer and many readers work at once, but a connection must not be shared
between threads mid-statement, so each thread gets its own connection, made on first use.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from desktop.errors import StoreError


def connect(path: Path, busy_timeout_s: float, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with foreign keys on.

    ``busy_timeout`` makes a writer wait for another one instead of failing at once.
    ``synchronous = NORMAL`` in WAL mode makes a commit a write to the WAL file without a
    disk sync: a commit survives the process being killed (the operating system has the
    data), only a power cut may lose the last ones, and a commit costs tens of
    microseconds instead of a sync's milliseconds, so a streaming reply can be committed
    several times a second (``onnxchat bench --history`` measures it).
    """
    if read_only:
        target, uri = f"{path.resolve().as_uri()}?mode=ro", True
    else:
        target, uri = str(path), False
    conn = sqlite3.connect(target, timeout=busy_timeout_s, isolation_level=None,
                           check_same_thread=False, uri=uri)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Everything inside commits together or not at all.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so two writers queue on the busy
    timeout instead of one failing halfway through with a lock upgrade error.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def is_damage(exc: sqlite3.Error) -> bool:
    """A damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) rather than a problem around it."""
    return type(exc) is sqlite3.DatabaseError


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock this one needs (SQLITE_BUSY, SQLITE_LOCKED)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def to_store_error(exc: sqlite3.Error, action: str, path: Path) -> StoreError:
    """One line for the user: what failed, on which file, and what to do about it."""
    text = str(exc).lower()
    if is_busy(exc):
        hint = "another program is using it; close other OnnxChat windows and try again"
    elif "full" in text:
        hint = "the disk is full; free some space and try again"
    elif "readonly" in text or "read-only" in text or "unable to open" in text:
        hint = ("the folder is not writable; fix its permissions or choose another folder "
                "with --data-dir or ONNXCHAT_DATA_DIR")
    elif "disk i/o error" in text:
        hint = ("the disk reported an error (full, removed or failing); check it and "
                "try again")
    elif is_damage(exc):
        hint = "the file is damaged; restart OnnxChat to move it aside and start afresh"
    else:
        hint = f"{exc}; check the folder and try again"
    return StoreError(f"Cannot {action} ({path}): {hint}.")


@contextlib.contextmanager
def store_errors(action: str, path: Path) -> Iterator[None]:
    """Turn a failure of the file or its disk into :class:`StoreError`.

    Constraint and programming errors are bugs and pass through unchanged.
    """
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if not (isinstance(exc, sqlite3.OperationalError) or is_damage(exc)):
            raise
        raise to_store_error(exc, action, path) from exc


class ThreadConnections:
    """One connection per thread, all closed by :meth:`close`.

    A connection whose thread has ended is closed when the next one is made, so short-lived
    threads do not pile up open files.
    """

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._closed = False

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._closed:
            return conn
        with self._lock:
            if self._closed:
                raise RuntimeError("the chat store is closed")
            alive = []
            for thread_ref, other in self._open:
                thread = thread_ref()
                if thread is None or not thread.is_alive():
                    other.close()
                else:
                    alive.append((thread_ref, other))
            conn = connect(self._path, self._busy_timeout_s)
            alive.append((weakref.ref(threading.current_thread()), conn))
            self._open = alive
            self._local.conn = conn
            return conn

    def close(self) -> None:
        """Close every connection; call it once no thread is using the store any more."""
        with self._lock:
            self._closed = True
            for _, conn in self._open:
                conn.close()
            self._open = []
