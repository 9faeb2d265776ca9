"""The chat history store (SQLite, no Qt): what the window and ``onnxchat history`` use.

Opening
    ``store = ChatStore.open(data_dir)`` opens ``<data_dir>/chats.sqlite3`` (``data_dir`` from
    ``desktop.paths.data_dir(override)``), creating it, or migrating an older file after
    backing it up beside itself (``chats.sqlite3.v1-backup-<time>``). A file written by a
    newer OnnxChat is refused with :class:`StoreError` and left untouched. A damaged file is
    moved aside (``chats.sqlite3.corrupt-<time>``) and a fresh store is used; the new file
    keeps a notice saying where the old one went until a front end takes it with
    ``store.take_notice()`` (``None`` normally) and shows it: every front end calls it once
    at start, so the user is told once, by whichever starts first. Replies left
    ``streaming`` by a store that is gone (crashed, killed) become ``interrupted``.
    ``store.close()``, or use ``with``.

    Any number of processes may open the same folder at once: opening is serialised by a
    lock file (``chats.sqlite3.lock``), and each open store holds a lease (a locked file in
    ``chats.sqlite3.writers/``) that tells other processes its replies are still being
    written; see :mod:`desktop.store.locks`.

Conversations
    ``create_conversation(title="New chat", *, model=None, system_prompt="", sampling=None)``,
    ``get_conversation(id)``, ``list_conversations()`` (most recent first),
    ``rename_conversation(id, title)``, ``update_conversation(id, *, model=None,
    system_prompt=None, sampling=None)`` (``None`` = unchanged), ``delete_conversation(id)``.
    Each returns or takes :class:`Conversation` records (``sampling`` is a plain dict, e.g.
    ``SamplingSettings.to_dict()``).

Messages: a tree per conversation
    Each :class:`Message` has a ``parent_id``; the conversation's ``active_leaf_id`` ends the
    branch on screen, and ``messages(conversation_id)`` returns that branch, root first.

    - ``add_message(conversation_id, role, text)`` appends to the branch on screen and
      commits: call it for the user's message before generation starts.
    - ``begin_reply(conversation_id, repro, *, replacing=None) -> ReplyWriter`` creates the
      assistant reply (state ``streaming``, committed). On the generating thread call
      ``writer.append(piece)`` per piece (it commits the text so far every
      ``COMMIT_INTERVAL_S``, a tenth of a second), then one of
      ``writer.finish(ReplyStats(...), stop_reason)``, ``writer.cancel()`` or
      ``writer.fail(reason)`` (the reply failed: the text so far is kept, state ``error``,
      ``message.error`` the reason). :mod:`desktop.recording` does all this for an engine
      reply stream. :class:`Repro` records model name, manifest sha256,
      device, sampling settings, seed, prompt token count, context length and the messages
      dropped to fit it; ``stop_reason`` is added at the end. :class:`ReplyStats` holds
      ``completion_tokens``, ``first_token_s``, ``total_s`` (and ``tokens_per_s``).
    - Editing a message is ``edit_message(message_id, text)``, regenerating a reply is
      ``begin_reply(conversation_id, repro, replacing=old_reply_id)``: either makes a new
      sibling and shows its branch; the old branch stays. ``siblings(message_id)`` lists the
      alternatives (``sibling_ids(message_id)`` just their ids, for a "2/3" switch) and
      ``select_branch(message_id)`` shows one.
    - ``get_message(id)``; ``delete_message(id)`` removes the message and everything below.
    - Message states: ``complete``, ``streaming``, ``interrupted`` (cut off by a crash),
      ``cancelled``, ``error`` (``message.error`` holds the text).

Search and files
    ``search(query, *, limit=50, marks=("[", "]")) -> list[SearchHit]`` searches all message
    text; any typed text is safe (search syntax is taken literally). A reply is searchable
    once it stops streaming.
    ``export_markdown(ids=None) -> str``, ``export_json(ids=None) -> bytes`` (all
    conversations when ``ids`` is None) and ``import_json(data: bytes) -> ImportReport``; see
    :mod:`desktop.store.exchange` for the file format and the import rules (ids kept,
    conversations already present skipped, all or nothing).

Threads and errors
    Any thread may call the store (each gets its own connection): the window reads while the
    generating thread writes. Use a long-lived generating thread rather than one per reply.
    Failures of the file or disk (locked, read-only, full) raise :class:`StoreError` with
    one line saying what to do; committed data is kept. Unknown ids raise
    :class:`NotFoundError`, text over a size limit :class:`UserError`.
"""

from desktop.errors import StoreError
from desktop.store.chat_store import DB_FILENAME, ChatStore, NotFoundError
from desktop.store.exchange import ImportReport, InvalidImportError
from desktop.store.records import (
    CANCELLED,
    COMPLETE,
    ERROR,
    INTERRUPTED,
    STREAMING,
    Conversation,
    Message,
    ReplyStats,
    Repro,
    SearchHit,
)
from desktop.store.reply import COMMIT_INTERVAL_S, ReplyWriter
from desktop.store.schema import SCHEMA_VERSION

__all__ = [
    "CANCELLED",
    "COMMIT_INTERVAL_S",
    "COMPLETE",
    "DB_FILENAME",
    "ERROR",
    "INTERRUPTED",
    "SCHEMA_VERSION",
    "STREAMING",
    "ChatStore",
    "Conversation",
    "ImportReport",
    "InvalidImportError",
    "Message",
    "NotFoundError",
    "ReplyStats",
    "ReplyWriter",
    "Repro",
    "SearchHit",
    "StoreError",
]
