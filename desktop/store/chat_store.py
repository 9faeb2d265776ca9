"""The chat history: conversations and their message trees in one SQLite file."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from desktop.errors import UserError
from desktop.store import exchange
from desktop.store.db import ThreadConnections, is_busy, store_errors, transaction
from desktop.store.locks import WriterLease
from desktop.store.opening import prepare
from desktop.store.records import (
    COMPLETE,
    ROLES,
    STREAMING,
    Conversation,
    Message,
    ReplyStats,
    Repro,
    SearchHit,
    dump_json,
    new_id,
    now_text,
    time_from_db,
)
from desktop.store.reply import COMMIT_INTERVAL_S, ReplyWriter
from desktop.store.rows import (
    CONVERSATION_SELECT,
    MESSAGE_SELECT,
    conversation_from_row,
    insert_conversation,
    insert_messages,
    message_from_row,
)
from desktop.store.search import fts_query
from desktop.text import clean_text

DB_FILENAME = "chats.sqlite3"

# The branch on screen: from the active leaf up through the parents, with each message's
# depth below the leaf. Not sorted here: SQLite would copy every row, text and all, through
# its sorter (five times the cost of reading a chat with megabytes of text); see _branch().
_BRANCH = f"""
WITH RECURSIVE branch(id, depth) AS (
    SELECT active_leaf_id, 0 FROM conversations WHERE id = ? AND active_leaf_id IS NOT NULL
    UNION ALL
    SELECT m.parent_id, branch.depth + 1 FROM messages m JOIN branch ON m.id = branch.id
    WHERE m.parent_id IS NOT NULL
)
{MESSAGE_SELECT.replace(" FROM ", ", branch.depth FROM ", 1)} JOIN branch ON m.id = branch.id
"""

# From a message down through the newest child at each step, to a leaf.
_NEWEST_LEAF = """
WITH RECURSIVE down(id, depth) AS (
    SELECT ?, 0
    UNION ALL
    SELECT (SELECT c.id FROM messages c WHERE c.parent_id = down.id ORDER BY c.seq DESC LIMIT 1),
           down.depth + 1
    FROM down WHERE down.id IS NOT NULL
)
SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1
"""

_SUBTREE = """
WITH RECURSIVE subtree(id) AS (
    SELECT ?
    UNION ALL
    SELECT m.id FROM messages m JOIN subtree ON m.parent_id = subtree.id
)
"""


class NotFoundError(UserError, LookupError):
    """No conversation or message with the given id."""


class ChatStore:
    """Conversations and messages in ``<data dir>/chats.sqlite3``; see the package docstring.

    Safe to use from several threads at once: each thread gets its own connection.
    """

    def __init__(self, path: Path, busy_timeout_s: float, lease: WriterLease) -> None:
        """Use :meth:`open`, which checks and migrates the file first."""
        self.path = path
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._lease = lease
        self._connections = ThreadConnections(path, busy_timeout_s)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], *,
             busy_timeout_s: float = 5.0) -> ChatStore:
        """Open (creating, migrating or recovering as needed) the store in ``data_dir``.

        Replies left ``streaming`` by a store that is gone (its process crashed or was
        killed) become ``interrupted``; those another running process is still writing are
        left alone, so any number of windows, terminals and tools may open the same folder.
        """
        path = Path(data_dir) / DB_FILENAME
        lease = prepare(path, busy_timeout_s)
        return cls(path, busy_timeout_s, lease)

    def close(self) -> None:
        """Close all connections and give up the writer lease; the store is unusable
        afterwards. A reply still ``streaming`` is marked interrupted by the next open."""
        self._connections.close()
        self._lease.release()

    def take_notice(self) -> str | None:
        """The pending notice for the user, removed as it is returned: show it.

        Set when a damaged history file was moved aside; it says where the old file went.
        Each notice is handed out once, to the first front end that asks, whichever process
        that is.
        """
        with self._errors("read the chat history"):
            if self._conn().execute("SELECT 1 FROM notices LIMIT 1").fetchone() is None:
                return None
        with self._write("read the chat history") as conn:
            rows = conn.execute("SELECT text FROM notices ORDER BY id").fetchall()
            conn.execute("DELETE FROM notices")
        return " ".join(row[0] for row in rows) or None

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- conversations --------------------------------------------------------------------

    def create_conversation(self, title: str = "New chat", *, model: str | None = None,
                            system_prompt: str = "",
                            sampling: dict[str, Any] | None = None) -> Conversation:
        title, system_prompt = clean_text(title), clean_text(system_prompt)
        _check(exchange.check_title, "the title", title)
        _check(exchange.check_text, "the system prompt", system_prompt)
        if model is not None:
            _check(exchange.check_title, "the model name", model)
        stamp = time_from_db(now_text())
        conversation = Conversation(id=new_id(), title=title, created=stamp, updated=stamp,
                                    model=model, system_prompt=system_prompt,
                                    sampling=dict(sampling or {}))
        with self._write("create the conversation") as conn:
            insert_conversation(conn, conversation)
        return conversation

    def get_conversation(self, conversation_id: str) -> Conversation:
        with self._errors("read the chat history"):
            row = self._conn().execute(f"{CONVERSATION_SELECT} WHERE id = ?",
                                       (conversation_id,)).fetchone()
        if row is None:
            raise _no_conversation(conversation_id)
        return conversation_from_row(row)

    def list_conversations(self) -> list[Conversation]:
        """All conversations, most recently active first."""
        with self._errors("read the chat history"):
            rows = self._conn().execute(
                f"{CONVERSATION_SELECT} ORDER BY updated DESC, id").fetchall()
        return [conversation_from_row(row) for row in rows]

    def rename_conversation(self, conversation_id: str, title: str) -> Conversation:
        title = clean_text(title)
        _check(exchange.check_title, "the title", title)
        self._update_conversation(conversation_id, "rename the conversation", title=title)
        return self.get_conversation(conversation_id)

    def update_conversation(self, conversation_id: str, *, model: str | None = None,
                            system_prompt: str | None = None,
                            sampling: dict[str, Any] | None = None) -> Conversation:
        """Change the model, system prompt or sampling settings; ``None`` leaves one as is.

        Like a rename, this does not move the conversation up the list: ``updated`` is the
        time of the last message.
        """
        changes: dict[str, Any] = {}
        if model is not None:
            _check(exchange.check_title, "the model name", model)
            changes["model"] = model
        if system_prompt is not None:
            system_prompt = clean_text(system_prompt)
            _check(exchange.check_text, "the system prompt", system_prompt)
            changes["system_prompt"] = system_prompt
        if sampling is not None:
            changes["sampling"] = dump_json(sampling)
        if changes:
            self._update_conversation(conversation_id, "save the conversation settings",
                                      **changes)
        return self.get_conversation(conversation_id)

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation with all its messages."""
        with self._write("delete the conversation") as conn:
            cursor = conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            if cursor.rowcount == 0:
                raise _no_conversation(conversation_id)

    # --- messages ---------------------------------------------------------------------------

    def add_message(self, conversation_id: str, role: str, text: str) -> Message:
        """Append a message to the branch on screen and make it the active leaf (committed)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        text = clean_text(text)
        _check(exchange.check_text, "the message", text)
        with self._write("save the message") as conn:
            parent = self._leaf(conn, conversation_id)
            return self._insert(conn, conversation_id, parent, role, text, COMPLETE, None)

    def edit_message(self, message_id: str, text: str) -> Message:
        """Store an edited message as a new sibling of the original, and show its branch.

        The original and everything after it stay in the tree (see :meth:`siblings`).
        """
        text = clean_text(text)
        _check(exchange.check_text, "the message", text)
        with self._write("save the edited message") as conn:
            original = self._message(conn, message_id)
            return self._insert(conn, original.conversation_id, original.parent_id,
                                original.role, text, COMPLETE, None)

    def begin_reply(self, conversation_id: str, repro: Repro, *, replacing: str | None = None,
                    commit_interval_s: float = COMMIT_INTERVAL_S,
                    clock: Callable[[], float] = time.monotonic) -> ReplyWriter:
        """Create an empty assistant reply in state ``streaming`` (committed) and return its writer.

        The reply follows the active leaf, or, with ``replacing`` (regenerate), becomes a new
        sibling of that earlier reply, which is kept. ``clock`` and ``commit_interval_s``
        decide how often :meth:`ReplyWriter.append` commits.
        """
        with self._write("start the reply") as conn:
            if replacing is None:
                parent = self._leaf(conn, conversation_id)
            else:
                old = self._message(conn, replacing)
                if old.conversation_id != conversation_id:
                    raise _no_message(replacing)
                parent = old.parent_id
            message = self._insert(conn, conversation_id, parent, "assistant", "", STREAMING,
                                   replace(repro, stop_reason=None))
            conn.execute("INSERT INTO reply_writers (message_id, writer) VALUES (?, ?)",
                         (message.id, self._lease.writer_id))
        return ReplyWriter(self, message.id, conversation_id, repro,
                           commit_interval_s=commit_interval_s, clock=clock)

    def get_message(self, message_id: str) -> Message:
        with self._errors("read the chat history"):
            return self._message(self._conn(), message_id)

    def messages(self, conversation_id: str) -> list[Message]:
        """The branch on screen, first message first (one query, however long the chat)."""
        with self._errors("read the chat history"):
            conn = self._conn()
            rows = _branch(conn, conversation_id)
            if not rows:
                self.get_conversation(conversation_id)  # raises if there is no such chat
        return [message_from_row(row) for row in rows]

    def siblings(self, message_id: str) -> list[Message]:
        """The message and its alternatives (edits, regenerations), oldest first."""
        with self._errors("read the chat history"):
            conn = self._conn()
            message = self._message(conn, message_id)
            rows = conn.execute(
                f"{MESSAGE_SELECT} WHERE m.conversation_id = ? AND m.parent_id IS ? "
                "ORDER BY m.seq", (message.conversation_id, message.parent_id)).fetchall()
        return [message_from_row(row) for row in rows]

    def sibling_ids(self, message_id: str) -> list[str]:
        """The ids of :meth:`siblings`, without reading any text (a reply may be megabytes)."""
        with self._errors("read the chat history"):
            conn = self._conn()
            row = conn.execute("SELECT conversation_id, parent_id FROM messages WHERE id = ?",
                               (message_id,)).fetchone()
            if row is None:
                raise _no_message(message_id)
            rows = conn.execute("SELECT id FROM messages WHERE conversation_id = ? AND "
                                "parent_id IS ? ORDER BY seq", row).fetchall()
        return [r[0] for r in rows]

    def select_branch(self, message_id: str) -> list[Message]:
        """Show the branch through ``message_id`` (down to its newest leaf); returns it."""
        with self._write("switch the branch") as conn:
            message = self._message(conn, message_id)
            leaf = conn.execute(_NEWEST_LEAF, (message_id,)).fetchone()[0]
            conn.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                         (leaf, message.conversation_id))
        return self.messages(message.conversation_id)

    def delete_message(self, message_id: str) -> None:
        """Delete a message and everything below it.

        If the branch on screen went with it, the newest remaining branch at that point (a
        sibling's, else the parent's) is shown instead.
        """
        with self._write("delete the message") as conn:
            message = self._message(conn, message_id)
            conn.execute(f"{_SUBTREE} DELETE FROM messages WHERE id IN subtree", (message_id,))
            leaf = self._leaf(conn, message.conversation_id)
            if leaf is None:  # the active leaf was in the subtree (ON DELETE SET NULL)
                start = message.parent_id
                if start is None:
                    row = conn.execute(
                        "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS NULL "
                        "ORDER BY seq DESC LIMIT 1", (message.conversation_id,)).fetchone()
                    start = row[0] if row else None
                if start is not None:
                    leaf = conn.execute(_NEWEST_LEAF, (start,)).fetchone()[0]
                conn.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                             (leaf, message.conversation_id))

    # --- search and files -------------------------------------------------------------------

    def search(self, query: str, *, limit: int = 50,
               marks: tuple[str, str] = ("[", "]")) -> list[SearchHit]:
        """Messages containing every word of ``query`` (as word prefixes), best match first.

        Any text is a valid query: search syntax in it is matched literally. Messages on
        branches not shown are found too (:meth:`select_branch` shows one). ``marks``
        surround the matched words in the snippet.
        """
        match = fts_query(query)
        if match is None:
            return []
        with self._errors("search the chat history"):
            rows = self._conn().execute(
                "SELECT m.conversation_id, m.id, snippet(messages_fts, 0, ?, ?, '…', 16) "
                "FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid "
                "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
                (marks[0], marks[1], match, limit)).fetchall()
        return [SearchHit(*row) for row in rows]

    def export_json(self, conversation_ids: Sequence[str] | None = None) -> bytes:
        """The lossless JSON history file (UTF-8) of some or all conversations."""
        with self._snapshot() as conn:
            return exchange.export_json(conn, self._export_ids(conn, conversation_ids))

    def export_markdown(self, conversation_ids: Sequence[str] | None = None) -> str:
        """Some or all conversations as Markdown, the branch on screen of each."""
        with self._snapshot() as conn:
            chats = []
            for cid in self._export_ids(conn, conversation_ids):
                row = conn.execute(f"{CONVERSATION_SELECT} WHERE id = ?", (cid,)).fetchone()
                branch = _branch(conn, cid)
                chats.append((conversation_from_row(row), [message_from_row(r) for r in branch]))
        return exchange.render_markdown(chats)

    def import_json(self, data: bytes) -> exchange.ImportReport:
        """Import a JSON history file, all or nothing; ids already here are skipped.

        Raises :class:`InvalidImportError` naming the problem in a bad file.
        """
        chats = exchange.parse(data)
        with self._write("import the history") as conn:
            return exchange.insert(conn, chats)

    # --- used by ReplyWriter ------------------------------------------------------------------

    def _save_reply_text(self, message_id: str, text: str) -> bool:
        """Commit the text so far; ``False`` when another process holds the write lock.

        This does not wait for the lock: decoding must not stall behind another process's
        write (an import, say), and the next piece of the reply tries again.
        """
        conn = self._conn()
        with self._errors("save the reply"):
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("UPDATE messages SET text = ? WHERE id = ?", (text, message_id))
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    return False
                raise
            finally:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return True

    def _end_reply(self, message_id: str, conversation_id: str, text: str, state: str,
                   stats: ReplyStats | None, repro: Repro, error: str | None) -> None:
        with self._write("save the reply") as conn:
            conn.execute(
                "UPDATE messages SET text = ?, state = ?, stats = ?, repro = ?, error = ? "
                "WHERE id = ?",
                (text, state, None if stats is None else dump_json(stats.to_dict()),
                 dump_json(repro.to_dict()), error, message_id))
            conn.execute("DELETE FROM reply_writers WHERE message_id = ?", (message_id,))
            conn.execute("UPDATE conversations SET updated = ? WHERE id = ?",
                         (now_text(), conversation_id))

    # --- internals ----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return store_errors(action, self.path)

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._errors(action), transaction(self._conn()) as conn:
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one state of the file, even while a writer commits."""
        with self._errors("read the chat history"):
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _export_ids(self, conn: sqlite3.Connection,
                    conversation_ids: Sequence[str] | None) -> list[str]:
        if conversation_ids is None:
            return [r[0] for r in conn.execute("SELECT id FROM conversations ORDER BY created, id")]
        for cid in conversation_ids:
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (cid,)).fetchone() is None:
                raise _no_conversation(cid)
        return list(conversation_ids)

    def _update_conversation(self, conversation_id: str, action: str, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._write(action) as conn:
            cursor = conn.execute(f"UPDATE conversations SET {assignments} WHERE id = ?",
                                  (*columns.values(), conversation_id))
            if cursor.rowcount == 0:
                raise _no_conversation(conversation_id)

    @staticmethod
    def _leaf(conn: sqlite3.Connection, conversation_id: str) -> str | None:
        row = conn.execute("SELECT active_leaf_id FROM conversations WHERE id = ?",
                           (conversation_id,)).fetchone()
        if row is None:
            raise _no_conversation(conversation_id)
        return row[0]

    @staticmethod
    def _message(conn: sqlite3.Connection, message_id: str) -> Message:
        row = conn.execute(f"{MESSAGE_SELECT} WHERE m.id = ?", (message_id,)).fetchone()
        if row is None:
            raise _no_message(message_id)
        return message_from_row(row)

    @staticmethod
    def _insert(conn: sqlite3.Connection, conversation_id: str, parent_id: str | None,
                role: str, text: str, state: str, repro: Repro | None) -> Message:
        """Insert a message, make it the active leaf and mark the conversation updated."""
        created = now_text()
        message = Message(id=new_id(), conversation_id=conversation_id, parent_id=parent_id,
                          role=role, text=text, created=time_from_db(created), state=state,
                          repro=repro)
        insert_messages(conn, [message])
        conn.execute("UPDATE conversations SET active_leaf_id = ?, updated = ? WHERE id = ?",
                     (message.id, created, conversation_id))
        return message


def _branch(conn: sqlite3.Connection, conversation_id: str) -> list[tuple[Any, ...]]:
    """The message rows of the branch on screen, root first."""
    rows = conn.execute(_BRANCH, (conversation_id,)).fetchall()
    rows.sort(key=lambda row: -row[-1])
    return [row[:-1] for row in rows]


def _check(check: Callable[[str, str], None], what: str, value: str) -> None:
    """Apply a size limit of the history format, as a :class:`UserError`."""
    try:
        check(what, value)
    except ValueError as exc:
        message = str(exc)
        raise UserError(f"{message[0].upper()}{message[1:]}; shorten it.") from exc


def _no_conversation(conversation_id: str) -> NotFoundError:
    return NotFoundError(f"No conversation {conversation_id!r} in the chat history; "
                         "`onnxchat history list` shows the ids.")


def _no_message(message_id: str) -> NotFoundError:
    return NotFoundError(f"No message {message_id!r} in the chat history.")
