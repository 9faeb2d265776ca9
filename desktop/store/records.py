"""The records the store hands out, and how their values are written to SQLite and JSON.

Every row value goes through one of the helpers here on its way in and out, so the database,
the JSON export and the import agree on one spelling: timestamps are UTC text with
microseconds (``2025-01-31T12:00:00.000000Z``, which sorts like time), and JSON columns are
written canonically (sorted keys, no spaces) so that equal values are equal bytes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

#: Message states. ``streaming`` is a reply being written; one still ``streaming`` when the
#: store is next opened was cut off by a crash and becomes ``interrupted``.
COMPLETE = "complete"
STREAMING = "streaming"
INTERRUPTED = "interrupted"
CANCELLED = "cancelled"
ERROR = "error"
STATES = (COMPLETE, STREAMING, INTERRUPTED, CANCELLED, ERROR)
ROLES = ("system", "user", "assistant")

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def new_id() -> str:
    """A random id: unique across stores, so imported conversations keep theirs."""
    return uuid.uuid4().hex


def now_text() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def time_from_db(text: str) -> datetime:
    """A timestamp the store wrote itself (fast: a long chat has thousands of them)."""
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)


def parse_time(text: str) -> datetime:
    """Parse the store's own timestamp spelling strictly; ``ValueError`` for anything else."""
    moment = datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)
    if not text.endswith("Z") or format_time(moment) != text:
        raise ValueError(f"not in the form 2025-01-31T12:00:00.000000Z: {text!r}")
    return moment


def dump_json(value: Any) -> str:
    """Canonical JSON text of a column value (sorted keys, compact, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class ReplyStats:
    """How long a reply took, for the line under it and the benchmark."""

    completion_tokens: int
    first_token_s: float
    total_s: float

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first over the time after the first."""
        decode_s = self.total_s - self.first_token_s
        if self.completion_tokens < 2 or decode_s <= 0:
            return None
        return (self.completion_tokens - 1) / decode_s

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplyStats:
        """Build from a history file, checking every field (``ValueError`` on a problem)."""
        _check_keys(cls, data)
        _check_type("completion_tokens", data["completion_tokens"], int)
        _check_type("first_token_s", data["first_token_s"], (int, float))
        _check_type("total_s", data["total_s"], (int, float))
        return cls(**data)


@dataclass(frozen=True)
class Repro:
    """What is needed to reproduce an assistant reply.

    ``sampling`` holds the sampling settings as a plain mapping (the engine's
    ``SamplingSettings.to_dict()``), ``seed`` the seed actually used (also when the settings
    asked for a random one), ``prompt_tokens`` the length of the rendered prompt,
    ``context_length`` the context it had to fit and ``dropped_messages`` the indexes of the
    old messages left out to fit it. ``stop_reason`` is ``None`` until the reply ends, then
    the engine's reason (``"eos"``, ``"stop_string"``, ``"length"``, ``"cancelled"``,
    ``"error"``).
    """

    model: str
    manifest_sha256: str
    device: str
    sampling: Mapping[str, Any]
    seed: int | None
    prompt_tokens: int
    context_length: int = 0
    dropped_messages: tuple[int, ...] = ()
    stop_reason: str | None = None

    def __post_init__(self) -> None:
        # Callers may pass a list; a tuple keeps the record immutable and equal to itself
        # read back from the store.
        object.__setattr__(self, "dropped_messages", tuple(self.dropped_messages))

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["sampling"] = dict(self.sampling)
        data["dropped_messages"] = list(self.dropped_messages)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Repro:
        """Build from a history file, checking every field (``ValueError`` on a problem)."""
        _check_keys(cls, data)
        for name in ("model", "manifest_sha256", "device"):
            _check_type(name, data[name], str)
        _check_type("sampling", data["sampling"], dict)
        _check_type("seed", data["seed"], (int, type(None)))
        _check_type("prompt_tokens", data["prompt_tokens"], int)
        _check_type("context_length", data["context_length"], int)
        _check_type("dropped_messages", data["dropped_messages"], list)
        for index in data["dropped_messages"]:
            _check_type("dropped_messages[]", index, int)
        _check_type("stop_reason", data["stop_reason"], (str, type(None)))
        return cls(**data)


@dataclass(frozen=True)
class Conversation:
    """One chat. ``active_leaf_id`` is the last message of the branch on screen."""

    id: str
    title: str
    created: datetime
    updated: datetime
    model: str | None
    system_prompt: str
    sampling: Mapping[str, Any] = field(default_factory=dict)
    active_leaf_id: str | None = None


@dataclass(frozen=True)
class Message:
    """One message. ``parent_id`` makes the tree: an edit or a regeneration is a sibling.

    ``stats`` and ``repro`` are set on assistant replies only; ``error`` on failed ones.
    """

    id: str
    conversation_id: str
    parent_id: str | None
    role: str
    text: str
    created: datetime
    state: str
    stats: ReplyStats | None = None
    repro: Repro | None = None
    error: str | None = None


@dataclass(frozen=True)
class SearchHit:
    """A message matching a search, with an excerpt around the match (marked)."""

    conversation_id: str
    message_id: str
    snippet: str


def _check_keys(cls: type, data: Mapping[str, Any]) -> None:
    names = [f.name for f in fields(cls)]
    if not isinstance(data, Mapping):
        raise ValueError(f"must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(names))
    missing = [n for n in names if n not in data]
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")
    if missing:
        raise ValueError(f"missing field {missing[0]!r}")


def _check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    # bool is an int in Python but not a count or a time.
    if isinstance(value, bool) or not isinstance(value, types):
        raise ValueError(f"{name} has the wrong type ({type(value).__name__})")
