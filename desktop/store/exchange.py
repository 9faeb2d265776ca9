"""History files: Markdown to read, JSON to move a history between machines losslessly.

The JSON file (``format: "onnxchat-history"``, ``format_version: 1``) holds every column of
every conversation and message: the whole tree (``parent_id``, ``active_leaf_id``), states,
stats and reproducibility records; a message's conversation is the one it is listed in. Keys
are sorted, conversations ordered by (created, id), messages in the order they were added, so
the same history always gives the same bytes and export → import → export is byte-identical.
(``messages.seq``, the local row number, is storage rather than data; the list order carries
it.)

Ids are kept on import: they are random, so the same id means the same conversation. A
conversation whose id is already in the store is skipped, keeping the store's copy; importing
a file twice therefore adds nothing the second time. Everything else in the file is checked
before anything is written, and the writing is one transaction: a file is imported whole or
not at all. Sampling settings, a conversation's and those a reply records, are checked with
the rules of the settings dialog (:func:`desktop.engine.settings.check_stored`), seeds
included, so a bad value is refused here, naming the conversation and the setting, rather
than failing the next message.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from desktop.errors import UserError
from desktop.store.records import (
    ROLES,
    STATES,
    Conversation,
    Message,
    ReplyStats,
    Repro,
    load_json,
    parse_time,
)
from desktop.store.rows import (
    CONVERSATION_COLUMNS,
    CONVERSATION_SELECT,
    MESSAGE_COLUMNS,
    MESSAGE_SELECT,
    insert_conversation,
    insert_messages,
)

FORMAT = "onnxchat-history"
FORMAT_VERSION = 1

#: Limits on what a history may hold; the store enforces them when writing too, so that
#: every history it exports can be imported again.
MAX_TITLE_CHARS = 1_000  # conversation titles and model names
MAX_TEXT_BYTES = 10_000_000

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONVERSATION_KEYS = (*CONVERSATION_COLUMNS, "messages")
_MESSAGE_KEYS = tuple(c for c in MESSAGE_COLUMNS if c != "conversation_id")


class InvalidImportError(UserError):
    """A history file that cannot be imported; the message names the problem."""


@dataclass(frozen=True)
class ImportReport:
    """Ids of the conversations added, and of those skipped because they already existed."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def check_text(what: str, value: str, *, max_bytes: int = MAX_TEXT_BYTES) -> None:
    """Refuse text over the size limit (``ValueError`` naming ``what``)."""
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise ValueError(f"{what} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit")


def check_title(what: str, value: str) -> None:
    """Refuse a title or name over the length limit (``ValueError`` naming ``what``)."""
    if len(value) > MAX_TITLE_CHARS:
        raise ValueError(f"{what} is {len(value)} characters long, over the "
                         f"{MAX_TITLE_CHARS} character limit")


# --- export ---------------------------------------------------------------------------------


def export_json(conn: sqlite3.Connection, conversation_ids: list[str]) -> bytes:
    """The JSON history file of these conversations, in file order (see module docstring)."""
    conversations = []
    for cid in conversation_ids:
        row = conn.execute(f"{CONVERSATION_SELECT} WHERE id = ?", (cid,)).fetchone()
        item: dict[str, Any] = dict(zip(CONVERSATION_COLUMNS, row, strict=True))
        item["sampling"] = load_json(item["sampling"])
        rows = conn.execute(f"{MESSAGE_SELECT} WHERE m.conversation_id = ? ORDER BY m.seq",
                            (cid,))
        item["messages"] = [_message_item(r) for r in rows]
        conversations.append(item)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "conversations": conversations}
    text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _message_item(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(MESSAGE_COLUMNS, row, strict=True))
    del item["conversation_id"]
    item["stats"] = load_json(item["stats"])
    item["repro"] = load_json(item["repro"])
    return item


def render_markdown(chats: Iterable[tuple[Conversation, list[Message]]]) -> str:
    """Conversations as Markdown for people: the branch on screen, one section per message."""
    parts = []
    for conversation, branch in chats:
        lines = [f"# {conversation.title}", ""]
        facts = [f"Created {_when(conversation.created)}",
                 f"updated {_when(conversation.updated)}"]
        if conversation.model:
            facts.append(f"model {conversation.model}")
        lines += [" · ".join(facts), ""]
        if conversation.system_prompt:
            lines += ["### System", "", conversation.system_prompt, ""]
        for message in branch:
            lines += [f"### {message.role.capitalize()}", "", message.text, ""]
            if message.state != "complete":
                note = f"*(reply {message.state}"
                note += f": {message.error})*" if message.error else ")*"
                lines += [note, ""]
        parts.append("\n".join(lines))
    return "\n---\n\n".join(parts)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- import ---------------------------------------------------------------------------------


def parse(data: bytes) -> list[tuple[Conversation, list[Message]]]:
    """Check a JSON history file completely; raise :class:`InvalidImportError` on a problem."""
    try:
        return _parse(data)
    except ValueError as exc:
        raise InvalidImportError(f"Cannot import the history file: {exc}; nothing was "
                                 "imported.") from exc


def _parse(data: bytes) -> list[tuple[Conversation, list[Message]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not valid UTF-8 text (bad byte at offset {exc.start})") from exc
    if not text.strip():
        raise ValueError("it is empty")
    try:
        document = json.loads(text, object_pairs_hook=_object, parse_constant=_constant,
                              parse_float=_finite)
        _check_strings("the file", document)
    except RecursionError as exc:
        raise ValueError("it is nested too deeply") from exc
    except json.JSONDecodeError as exc:
        if text.startswith("# "):  # the Markdown export, which is for reading
            raise ValueError("it is a Markdown export, which is for reading; import a JSON "
                             "export of the history instead") from exc
        raise ValueError(f"it is not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f'it is not an OnnxChat history file (no "format": "{FORMAT}")')
    version = document.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ValueError(f"format_version {version!r} is not supported (this OnnxChat reads "
                         f"version {FORMAT_VERSION}; a newer one may read it)")
    _keys("the file", document, ("format", "format_version", "conversations"))
    items = document["conversations"]
    if not isinstance(items, list):
        raise ValueError("conversations must be a list")
    seen_conversations: set[str] = set()
    seen_messages: set[str] = set()
    chats = []
    for index, item in enumerate(items):
        where = f"conversations[{index}]"
        conversation, messages = _conversation(where, item, seen_messages)
        if conversation.id in seen_conversations:
            raise ValueError(f"{where}.id {conversation.id!r} appears twice in the file")
        seen_conversations.add(conversation.id)
        chats.append((conversation, messages))
    return chats


def _conversation(where: str, item: Any,
                  seen_messages: set[str]) -> tuple[Conversation, list[Message]]:
    _keys(where, item, _CONVERSATION_KEYS)
    cid = _id(f"{where}.id", item["id"])
    title = _str(f"{where}.title", item["title"])
    check_title(f"{where}.title", title)
    named = f"{where} ({_quoted(title)})"
    model = _optional_str(f"{where}.model", item["model"])
    if model is not None:
        check_title(f"{where}.model", model)
    system_prompt = _str(f"{where}.system_prompt", item["system_prompt"])
    if not isinstance(item["sampling"], dict):
        raise ValueError(f"{where}.sampling must be an object")
    _check_sampling(f"{named}.sampling", item["sampling"])
    if not isinstance(item["messages"], list):
        raise ValueError(f"{where}.messages must be a list")
    messages: list[Message] = []
    ids_here: set[str] = set()
    for index, raw in enumerate(item["messages"]):
        message = _message(f"{where}.messages[{index}]", raw, cid, ids_here)
        if message.repro is not None:
            _check_repro(f"{named}.messages[{index}].repro", message.repro)
        if message.id in seen_messages:
            raise ValueError(f"{where}.messages[{index}].id {message.id!r} appears twice "
                             "in the file")
        seen_messages.add(message.id)
        ids_here.add(message.id)
        messages.append(message)
    leaf = _optional_str(f"{where}.active_leaf_id", item["active_leaf_id"])
    if (leaf is None) != (not messages) or (leaf is not None and leaf not in ids_here):
        raise ValueError(f"{where}.active_leaf_id must name one of its messages "
                         "(null only when it has none)")
    conversation = Conversation(
        id=cid, title=title, created=_time(f"{where}.created", item["created"]),
        updated=_time(f"{where}.updated", item["updated"]), model=model,
        system_prompt=system_prompt, sampling=item["sampling"], active_leaf_id=leaf)
    return conversation, messages


def _message(where: str, item: Any, conversation_id: str, earlier: set[str]) -> Message:
    _keys(where, item, _MESSAGE_KEYS)
    mid = _id(f"{where}.id", item["id"])
    parent = _optional_str(f"{where}.parent_id", item["parent_id"])
    if parent is not None and parent not in earlier:
        raise ValueError(f"{where}.parent_id must name an earlier message of the same "
                         "conversation")
    if item["role"] not in ROLES:
        raise ValueError(f"{where}.role must be one of {', '.join(ROLES)}")
    if item["state"] not in STATES:
        raise ValueError(f"{where}.state must be one of {', '.join(STATES)}")
    text = _str(f"{where}.text", item["text"])
    error = _optional_str(f"{where}.error", item["error"])
    stats = repro = None
    try:
        if item["stats"] is not None:
            stats = ReplyStats.from_dict(item["stats"])
    except ValueError as exc:
        raise ValueError(f"{where}.stats: {exc}") from exc
    try:
        if item["repro"] is not None:
            repro = Repro.from_dict(item["repro"])
    except ValueError as exc:
        raise ValueError(f"{where}.repro: {exc}") from exc
    return Message(id=mid, conversation_id=conversation_id, parent_id=parent,
                   role=item["role"], text=text, created=_time(f"{where}.created",
                                                               item["created"]),
                   state=item["state"], stats=stats, repro=repro, error=error)


def insert(conn: sqlite3.Connection,
           chats: list[tuple[Conversation, list[Message]]]) -> ImportReport:
    """Write checked conversations; call inside a transaction. Existing ids are skipped."""
    report = ImportReport()
    for conversation, messages in chats:
        if conn.execute("SELECT 1 FROM conversations WHERE id = ?",
                        (conversation.id,)).fetchone():
            report.skipped.append(conversation.id)
            continue
        for message in messages:
            if conn.execute("SELECT 1 FROM messages WHERE id = ?", (message.id,)).fetchone():
                raise InvalidImportError(
                    f"Cannot import the history file: message {message.id} of conversation "
                    f"{conversation.id} is already in this history under another "
                    "conversation; nothing was imported.")
        # The leaf is set once its message exists (the column references messages).
        insert_conversation(conn, replace(conversation, active_leaf_id=None))
        insert_messages(conn, messages)
        conn.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                     (conversation.active_leaf_id, conversation.id))
        report.imported.append(conversation.id)
    return report


def _check_sampling(where: str, values: dict[str, Any]) -> None:
    # Imported here: the engine package loads ONNX Runtime, which only an import needs.
    from desktop.engine.settings import check_stored

    try:
        check_stored(values)
    except UserError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _check_repro(where: str, repro: Repro) -> None:
    from desktop.engine.settings import RANGES, shown

    _check_sampling(f"{where}.sampling", dict(repro.sampling))
    low, high, *_ = RANGES["seed"]
    if repro.seed is not None and not low <= repro.seed <= high:
        raise ValueError(f"{where}.seed = {shown(repro.seed)} is out of range: valid is "
                         f"[{low}, {high}]")


def _quoted(title: str) -> str:
    """A conversation's title in a message: quoted, on one line, shortened."""
    line = " ".join(title.split())
    return f'"{line}"' if len(line) <= 40 else f'"{line[:39]}…"'


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _keys(where: str, item: Any, expected: Sequence[str]) -> None:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object")
    unknown = sorted(set(item) - set(expected))
    if unknown:
        raise ValueError(f"{where} has an unknown field {unknown[0]!r}")
    missing = [key for key in expected if key not in item]
    if missing:
        raise ValueError(f"{where} lacks the field {missing[0]!r}")


def _check_strings(where: str, value: Any) -> None:
    """Every string, keys included, must be storable text within the size limit.

    That covers message text, system prompts, error text and anything else. JSON escapes
    can spell lone surrogates (``"\\ud800"``), which are not text and which SQLite cannot
    store.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            _check_strings(f"{where} key {key[:40]!r}", key)
            _check_strings(f"{where}.{key}" if where != "the file" else key, item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(f"{where}[{index}]", item)
    elif isinstance(value, str):
        try:
            check_text(where, value)
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where} holds an invalid character (a lone surrogate escape "
                             f"at position {exc.start})") from exc


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    return value


def _optional_str(where: str, value: Any) -> str | None:
    return None if value is None else _str(where, value)


def _id(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{where} must be 1 to 64 letters, digits, '-' or '_'")
    return value


def _time(where: str, value: Any) -> datetime:
    try:
        return parse_time(_str(where, value))
    except ValueError as exc:
        raise ValueError(f"{where} is not a time like 2025-01-31T12:00:00.000000Z") from exc
