"""The OpenAI request and response format: check a request completely, build the replies.

Nothing here touches the model or the network. A request body is decoded, parsed and checked
field by field before anything is queued, and every problem becomes an :class:`ApiError` with
the HTTP status, the OpenAI error shape (``{"error": {message, type, param, code}}``) and the
name of the field, so a client is told exactly what to change.

Fields a local model cannot honour are either accepted and ignored (their type is still
checked) or refused with a 400 when ignoring them would hand the client something other than
what it asked for; :data:`IGNORED` and the README list which.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.settings import RANGES, WHOLE

#: Request bodies larger than this are refused with 413 before they are parsed.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: More messages than this are refused: no context holds them, and planning which to keep
#: would cost seconds of the server's time.
MAX_MESSAGES = 4096
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 256
#: The roles the chat template knows; ``developer`` is OpenAI's newer name for ``system``.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
#: Accepted with their type checked, then ignored (documented in the README).
IGNORED: dict[str, tuple[type, ...]] = {
    "frequency_penalty": (int, float),
    "presence_penalty": (int, float),
    "logit_bias": (dict,),
    "user": (str,),
    "tools": (list,),
    "functions": (list,),
    "parallel_tool_calls": (bool,),
    "metadata": (dict,),
    "store": (bool,),
    "service_tier": (str,),
}
#: Sampling extensions many local servers accept beside OpenAI's own (llama.cpp, vLLM), by
#: the engine's names, checked against the engine's ranges (``top_k`` 0 turns top-k off, as
#: in llama.cpp's server and Ollama).
EXTENSIONS = ("top_k", "min_p", "repetition_penalty")

_ERROR_TYPES = {401: "invalid_request_error", 429: "requests", 500: "server_error",
                503: "server_error"}


class ApiError(Exception):
    """A request the server refuses: HTTP status, one line for the client, the field at fault."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The OpenAI error shape."""
        return {"error": {"message": self.message,
                          "type": _ERROR_TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class GenerationRequest:
    """A checked request: the input, the sampling overrides, and how to answer."""

    endpoint: str  # "chat" or "completion"
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt: str = ""
    #: SamplingSettings fields the client set (engine names).
    overrides: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False


def read_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object: strict UTF-8, no NaN or infinities, bounded depth."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the request body is not valid UTF-8 (byte 0x{raw[exc.start]:02x} "
                       f"at offset {exc.start}); send JSON encoded as UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ApiError:
        raise
    except RecursionError:
        raise ApiError(400, "the request body nests too deeply to be parsed") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, "
                       f"column {exc.colno})") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise ApiError(400, f"the request body has a number that cannot be read: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {_kind(value)}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ApiError(400, f"the request body contains {name}, which is not valid JSON; send a "
                   "finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ApiError(400, f"the number {text[:40]} is too large; send a finite number")
    return value


def parse_chat(body: dict[str, Any], context_length: int) -> GenerationRequest:
    """``POST /v1/chat/completions``."""
    fields = _Fields(body)
    messages = _messages(body.get("messages"))
    choice = body.get("tool_choice")
    if choice not in (None, "none", "auto"):
        raise ApiError(400, "tool_choice can only be \"none\" or \"auto\": this server does not "
                       "call tools", param="tool_choice")
    fields.refuse_truthy("logprobs", "logprobs are not available from this server")
    fields.refuse_truthy("top_logprobs", "logprobs are not available from this server")
    response_format = body.get("response_format")
    if response_format is not None and (not isinstance(response_format, dict)
                                        or response_format.get("type") != "text"):
        raise ApiError(400, "response_format can only be {\"type\": \"text\"}: this server "
                       "cannot constrain the output to JSON", param="response_format")
    return GenerationRequest("chat", messages=messages, **fields.common(context_length))


def parse_completion(body: dict[str, Any], context_length: int) -> GenerationRequest:
    """``POST /v1/completions``."""
    fields = _Fields(body)
    prompt = _prompt(body.get("prompt"))
    fields.refuse_truthy("echo", "echo is not supported by this server")
    fields.refuse_truthy("suffix", "suffix (fill-in-the-middle) is not supported by this server")
    fields.refuse_truthy("logprobs", "logprobs are not available from this server")
    best_of = fields.integer("best_of", 1, 1_000_000)
    if best_of not in (None, 1):
        raise ApiError(400, f"best_of = {best_of} is not supported: this server makes one "
                       "completion per request", param="best_of")
    return GenerationRequest("completion", prompt=prompt, **fields.common(context_length))


class _Fields:
    """Typed access to the body's fields; a field that is absent or null reads as None."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def common(self, context_length: int) -> dict[str, Any]:
        """What both endpoints share: sampling, stop strings, n, streaming, ignored fields."""
        self.kind("model", str)
        for name, kinds in IGNORED.items():
            self.kind(name, *kinds)
        for name in ("frequency_penalty", "presence_penalty"):
            self.number(name, -2.0, 2.0)
        n = self.integer("n", 1, 1_000_000)
        if n not in (None, 1):
            raise ApiError(400, f"n = {n} is not supported: this server returns one choice per "
                           "request; send n = 1 or leave it out", param="n")
        overrides: dict[str, Any] = {}
        for limit in ("max_tokens", "max_completion_tokens"):  # the newer name wins
            max_tokens = self.integer(limit, 1, None)
            if max_tokens is not None and max_tokens > context_length:
                raise ApiError(400, f"{limit} = {max_tokens:,} is more than the model's context "
                               f"of {context_length:,} tokens", param=limit)
            if max_tokens is not None:
                overrides["max_new_tokens"] = max_tokens
        for name, low, high, low_ok in (("temperature", 0.0, 2.0, True),
                                        ("top_p", 0.0, 1.0, False)):
            value = self.number(name, low, high, low_ok)
            if value is not None:
                overrides[name] = float(value)
        for name in EXTENSIONS:
            low, high, low_ok, high_ok = RANGES[name]
            whole = name in WHOLE
            value = (self.integer(name, int(low), int(high)) if whole
                     else self.number(name, low, high, low_ok, high_ok))
            if value is not None:
                overrides[name] = value if whole else float(value)
        seed = self.integer("seed", 0, 2**63 - 1)
        if seed is not None:
            overrides["seed"] = seed
        stops = self.stop()
        if stops:
            overrides["stop_strings"] = stops
        stream = self.kind("stream", bool) or False
        options = self.kind("stream_options", dict) or {}
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise ApiError(400, "stream_options.include_usage must be true or false, got "
                           f"{_show(include_usage)}", param="stream_options.include_usage")
        return {"overrides": overrides, "stream": stream, "include_usage": include_usage}

    def kind(self, name: str, *kinds: type) -> Any:
        value = self.body.get(name)
        if value is None:
            return None
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            wanted = " or ".join(_TYPE_NAMES[k] for k in kinds)
            raise ApiError(400, f"{name} must be {wanted}, got {_show(value)}", param=name)
        return value

    def integer(self, name: str, low: int, high: int | None) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        upper = f" to {high:,}" if high is not None else " or more"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"{name} must be a whole number from {low:,}{upper}, got "
                           f"{_show(value)}", param=name)
        if value < low or (high is not None and value > high):
            raise ApiError(400, f"{name} = {_show(value)} is out of range: valid is "
                           f"{low:,}{upper}", param=name)
        return value

    def number(self, name: str, low: float, high: float, low_ok: bool = True,
               high_ok: bool = True) -> float | None:
        value = self.body.get(name)
        if value is None:
            return None
        valid = f"{'[' if low_ok else '('}{low}, {high}{']' if high_ok else ')'}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(400, f"{name} must be a number in {valid}, got {_show(value)}",
                           param=name)
        if (value < low or (value == low and not low_ok) or value > high
                or (value == high and not high_ok)):
            raise ApiError(400, f"{name} = {_show(value)} is out of range: valid is {valid}",
                           param=name)
        return value

    def stop(self) -> tuple[str, ...]:
        stop = self.body.get("stop")
        if stop is None:
            return ()
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ApiError(400, f"stop must be a string or a list of strings, got {_show(stop)}",
                           param="stop")
        if len(stops) > MAX_STOP_STRINGS:
            raise ApiError(400, f"stop has {len(stops)} strings; at most {MAX_STOP_STRINGS} are "
                           "accepted", param="stop")
        if any(not s or len(s) > MAX_STOP_CHARS for s in stops):
            raise ApiError(400, f"each stop string must have 1 to {MAX_STOP_CHARS} characters",
                           param="stop")
        return tuple(stops)

    def refuse_truthy(self, name: str, why: str) -> None:
        value = self.body.get(name)
        if value not in (None, False, 0, ""):
            raise ApiError(400, f"{name} = {_show(value)}: {why}", param=name)


def _messages(value: Any) -> list[dict[str, str]]:
    if value is None:
        raise ApiError(400, "messages is required: a list of {role, content} objects",
                       param="messages")
    if not isinstance(value, list):
        raise ApiError(400, f"messages must be a list of {{role, content}} objects, got "
                       f"{_kind(value)}", param="messages")
    if not value:
        raise ApiError(400, "messages is empty; send at least one message", param="messages")
    if len(value) > MAX_MESSAGES:
        raise ApiError(400, f"messages has {len(value):,} entries; this server accepts at most "
                       f"{MAX_MESSAGES:,} (older ones would not fit the context anyway)",
                       param="messages")
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with role and content, got "
                           f"{_kind(message)}", param=where)
        role = message.get("role")
        if role in ("tool", "function"):
            raise ApiError(400, f"{where}.role is {role!r}: tool results are not supported, "
                           "this server does not call tools", param=f"{where}.role")
        if not isinstance(role, str) or role not in ROLES:
            raise ApiError(400, f"{where}.role {_show(role)} is not a role this server knows; "
                           "use system, developer, user or assistant", param=f"{where}.role")
        content = message.get("content")
        if content is None and role == "assistant":  # a reply that only called tools
            content = ""
        out.append({"role": ROLES[role], "content": _content(content, f"{where}.content")})
    return out


def _content(value: Any, where: str) -> str:
    """Message text: a string, or a list of text parts (joined by newlines)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ApiError(400, f"{where} must be a string or a list of text parts, got "
                       f"{_kind(value)}", param=where)
    texts = []
    for j, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ApiError(400, f"{where}[{j}] must be an object with a type", param=where)
        if part["type"] != "text":
            raise ApiError(400, f"{where}[{j}] is a {part['type']!r} part; this server reads "
                           "text only", param=where)
        if not isinstance(part.get("text"), str):
            raise ApiError(400, f"{where}[{j}].text must be a string", param=where)
        texts.append(part["text"])
    return "\n".join(texts)


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        raise ApiError(400, f"prompt has {len(value)} texts; this server completes one prompt "
                       "per request", param="prompt")
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        raise ApiError(400, "prompt as token ids is not supported; send the text",
                       param="prompt")
    if not isinstance(value, str):
        raise ApiError(400, f"prompt must be a string, got {_kind(value)}", param="prompt")
    if not value:
        raise ApiError(400, "prompt is empty; send the text to continue", param="prompt")
    return value


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "a number", float: "a number",
               dict: "an object", list: "a list"}


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
             str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A short, safe rendering of a client's value for an error message."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


# --- responses ------------------------------------------------------------------------------

FINISH_REASONS = {"eos": "stop", "stop_string": "stop", "length": "length"}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


@dataclass(frozen=True)
class Envelope:
    """What every response object of one request carries."""

    id: str
    created: int
    model: str
    fingerprint: str

    def chat(self, text: str, finish: str, use: dict[str, int]) -> dict[str, Any]:
        return self._wrap("chat.completion", [{
            "index": 0, "message": {"role": "assistant", "content": text},
            "logprobs": None, "finish_reason": finish}]) | {"usage": use}

    def chat_chunk(self, delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return self._wrap("chat.completion.chunk", [{
            "index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])

    def completion(self, text: str, finish: str | None,
                   use: dict[str, int] | None = None) -> dict[str, Any]:
        body = self._wrap("text_completion", [{
            "index": 0, "text": text, "logprobs": None, "finish_reason": finish}])
        return body | {"usage": use} if use is not None else body

    def usage_chunk(self, kind: str, use: dict[str, int]) -> dict[str, Any]:
        return self._wrap(kind, []) | {"usage": use}

    def _wrap(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": self.fingerprint, "choices": choices}
