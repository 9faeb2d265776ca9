"""Rows to records and back: the one place that knows the column lists."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from desktop.store.records import (
    Conversation,
    Message,
    ReplyStats,
    Repro,
    dump_json,
    format_time,
    load_json,
    time_from_db,
)

CONVERSATION_COLUMNS = ("id", "title", "created", "updated", "model", "system_prompt",
                        "sampling", "active_leaf_id")
MESSAGE_COLUMNS = ("id", "conversation_id", "parent_id", "role", "text", "created", "state",
                   "stats", "repro", "error")
CONVERSATION_SELECT = f"SELECT {', '.join(CONVERSATION_COLUMNS)} FROM conversations"
#: Selects from ``messages`` under the alias ``m``, so queries can join it.
MESSAGE_SELECT = f"SELECT {', '.join('m.' + c for c in MESSAGE_COLUMNS)} FROM messages m"


def conversation_from_row(row: Sequence[Any]) -> Conversation:
    cid, title, created, updated, model, system_prompt, sampling, leaf = row
    return Conversation(id=cid, title=title, created=time_from_db(created),
                        updated=time_from_db(updated), model=model, system_prompt=system_prompt,
                        sampling=load_json(sampling), active_leaf_id=leaf)


def message_from_row(row: Sequence[Any]) -> Message:
    """A message the store wrote itself; its JSON columns were checked on the way in."""
    mid, cid, parent, role, text, created, state, stats, repro, error = row
    return Message(id=mid, conversation_id=cid, parent_id=parent, role=role, text=text,
                   created=time_from_db(created), state=state,
                   stats=None if stats is None else ReplyStats(**load_json(stats)),
                   repro=None if repro is None else Repro(**load_json(repro)),
                   error=error)


def insert_conversation(conn: sqlite3.Connection, c: Conversation) -> None:
    conn.execute(
        f"INSERT INTO conversations ({', '.join(CONVERSATION_COLUMNS)}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (c.id, c.title, format_time(c.created), format_time(c.updated), c.model,
         c.system_prompt, dump_json(dict(c.sampling)), c.active_leaf_id))


def insert_messages(conn: sqlite3.Connection, messages: Iterable[Message]) -> None:
    conn.executemany(
        f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((m.id, m.conversation_id, m.parent_id, m.role, m.text, format_time(m.created),
          m.state, None if m.stats is None else dump_json(m.stats.to_dict()),
          None if m.repro is None else dump_json(m.repro.to_dict()), m.error)
         for m in messages))
