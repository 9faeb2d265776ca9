"""Chat templates: the model's own Jinja template, rendered as transformers renders it, in a
sandbox with bounds.

The prompt a model was trained on is what transformers' ``apply_chat_template`` produces, so
rendering copies its environment: ``trim_blocks``/``lstrip_blocks``, the ``loopcontrols``
extension, the ``{% generation %}`` tag (its body is rendered as is), a ``tojson`` filter that
is ``json.dumps`` with ``ensure_ascii=False`` (no HTML escaping, keys in their order),
``raise_exception`` and ``strftime_now``, and ``tools``/``documents`` set to ``None`` when
not given.

Templates come from model folders people download, so they are code from strangers. They run
in Jinja's immutable sandbox (no access to Python internals, no mutation of the caller's
messages), with a bound on string/list repetition, on output size and on wall time, so a
hostile template fails with a clear error instead of hanging or eating memory. The time
bound costs almost nothing: instead of tracing every line, the deadline is checked where a
template can spend unbounded time, in every loop (each ``{% for %}`` is compiled to iterate
through a checking wrapper) and in every call (which covers recursive macros). Between those
points a template can only run straight-line code of its own bounded length.
"""

from __future__ import annotations

import json
import math
import time
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from desktop.errors import ModelError

#: Used when a model folder has no template: documented in models/README.md.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

#: Output allowed whatever the conversation; a long conversation may use more, see
#: ``OUTPUT_PER_INPUT_CHAR``.
MAX_OUTPUT_CHARS = 4_000_000
#: Output allowed per character of message text on top of ``MAX_OUTPUT_CHARS``: a template
#: wraps each message in a few markers, so ordinary output stays well under this, while a
#: template that loops on its own output is still stopped.
OUTPUT_PER_INPUT_CHAR = 4
MAX_RENDER_SECONDS = 2.0
_MAX_REPEAT = 1_000_000
_LOOP_FILTER = "__onnxchat_bounded_loop"
#: Items of a list or tuple a loop runs between two looks at the clock; each runs the loop
#: body once, itself bounded (its own loops and calls check the clock too).
_LOOP_SLICE = 32
_DICT_ATTRIBUTES = frozenset(dir(dict))
_DICT_READERS = frozenset({"get", "items", "keys", "values"})
#: Public ``str`` methods; ``format``/``format_map`` are left to the sandbox, which wraps them.
_STR_METHODS = frozenset(n for n in dir(str) if not n.startswith("_")) - {"format", "format_map"}
_METHOD_TYPES = (types.MethodType, types.BuiltinMethodType)
#: Jinja's own objects whose public attributes the sandbox always allows.
_PLAIN_OBJECTS = (Namespace, LoopContext)

#: The deadline of the render running in this thread (``inf`` outside a render).
_deadline: ContextVar[float] = ContextVar("chat_template_deadline", default=math.inf)


class TemplateError(ModelError):
    """The chat template failed, broke a bound, or raised ``raise_exception``."""


class _TimeLimit(TemplateError):
    """The render ran past its deadline (the message is filled in by ``render``)."""


def _check_deadline() -> None:
    if time.monotonic() > _deadline.get():
        raise _TimeLimit()


class _GenerationTag(Extension):
    """``{% generation %}…{% endgeneration %}``: transformers marks the assistant's tokens with
    it for training masks; for a prompt its body renders unchanged, in its own scope."""

    tags = frozenset({"generation"})

    def parse(self, parser: jinja2.parser.Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus the bounds: repetitions (``'x' * 10**9``), powers, time."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # The stock sandbox renders an empty string here; a template that reaches for
        # internals is hostile or broken, so stop it with a clear error instead.
        raise TemplateError(
            f"chat template tried to access '{attribute}' of a {type(obj).__name__}, "
            "which is not allowed"
        )

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise TemplateError("chat template computes too large a power")
            return left**right
        for seq, count in ((left, right), (right, left)):
            sized = isinstance(seq, (str, list, tuple)) and isinstance(count, int)
            if sized and len(seq) * count > _MAX_REPEAT:
                raise TemplateError("chat template builds a string or list that is too large")
        return left * right

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Fast paths for what chat templates read most: message fields, dict views, string
        # methods, namespace members and ``loop`` properties. Each returns exactly what the
        # sandbox's own lookup returns for that case, without its chain of isinstance checks.
        kind = type(obj)
        if kind is dict:
            if attribute not in _DICT_ATTRIBUTES:  # not an attribute, so Jinja reads the item
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
            if attribute in _DICT_READERS:
                return getattr(obj, attribute)
        elif kind is str:
            if attribute in _STR_METHODS:
                return getattr(obj, attribute)
        elif kind in _PLAIN_OBJECTS and not attribute.startswith("_"):
            try:
                value = getattr(obj, attribute)
            except AttributeError:
                return self.undefined(obj=obj, name=attribute)
            if not isinstance(value, _METHOD_TYPES):  # str.format needs the sandbox's wrapper
                return value
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # Every call from the template passes here, so recursion cannot outrun the deadline.
        _check_deadline()
        return super().call(__context, __obj, *args, **kwargs)


@jinja2.pass_context  # never folded into a constant at compile time
def _bounded_loop(context: Any, iterable: Iterable[Any]) -> Iterator[Any]:
    deadline = _deadline.get()
    clock = time.monotonic
    if type(iterable) in (list, tuple):  # the usual case: read the clock once per slice
        for start in range(0, len(iterable), _LOOP_SLICE):
            if clock() > deadline:
                raise _TimeLimit()
            yield from iterable[start:start + _LOOP_SLICE]
        return
    for item in iterable:
        if clock() > deadline:
            raise _TimeLimit()
        yield item


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """transformers' ``tojson``: plain ``json.dumps``, not Jinja's HTML-safe variant."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise TemplateError(f"chat template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _environment() -> _BoundedSandbox:
    env = _BoundedSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, "jinja2.ext.loopcontrols"],
    )
    env.filters["tojson"] = _tojson
    env.filters[_LOOP_FILTER] = _bounded_loop
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    return env


_ENV = _environment()


@lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    """Compile once per distinct template; every ``for`` iterates through ``_bounded_loop``."""
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"chat template has a syntax error on line {exc.lineno}: {exc.message}; "
            "fix chat_template.jinja in the model folder or delete it to use the plain format"
        ) from None
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None,
                                 lineno=loop.lineno)
    return _ENV.from_string(tree)


def _message_chars(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(len(m["content"]) for m in messages
               if isinstance(m, Mapping) and isinstance(m.get("content"), str))


class ChatTemplate:
    """A compiled chat template plus the special tokens it may refer to."""

    def __init__(
        self,
        source: str | None,
        *,
        bos_token: str = "",
        eos_token: str = "",
        max_seconds: float = MAX_RENDER_SECONDS,
        max_chars: int = MAX_OUTPUT_CHARS,
    ) -> None:
        self.is_fallback = not source
        self.source = source or FALLBACK_TEMPLATE
        self._max_seconds = max_seconds
        self._max_chars = max_chars
        self._template = _compile(self.source)
        self._specials = {"bos_token": bos_token, "eos_token": eos_token}

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = True,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        documents: Sequence[Mapping[str, Any]] | None = None,
        **variables: Any,
    ) -> str:
        """Render ``messages`` ([{role, content}]) to the prompt text the model expects.

        ``tools``, ``documents`` and ``variables`` (for example Qwen 3's ``enable_thinking``)
        reach the template as they do through ``apply_chat_template``.
        """
        context = self._template.new_context({
            "messages": messages,
            "tools": tools,
            "documents": documents,
            "add_generation_prompt": add_generation_prompt,
            **self._specials,
            **variables,
        })
        token = _deadline.set(time.monotonic() + self._max_seconds)
        pieces: list[str] = []
        size = 0
        limit = self._max_chars
        try:
            for chunk in self._template.root_render_func(context):
                size += len(chunk)
                if size > limit:
                    limit = self._output_limit(messages, size)
                pieces.append(chunk)
        except _TimeLimit:
            raise TemplateError(
                f"chat template took longer than {self._max_seconds:g} s and was stopped"
            ) from None
        except TemplateError:
            raise
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(
                f"chat template tried something unsafe and was stopped: {exc}"
            ) from None
        except Exception as exc:  # a stranger's template may raise anything
            raise TemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from None
        finally:
            _deadline.reset(token)
        return "".join(pieces)

    def _output_limit(self, messages: Sequence[Mapping[str, Any]], size: int) -> int:
        """The output bound for these messages, computed only once the output is long."""
        limit = self._max_chars + OUTPUT_PER_INPUT_CHAR * _message_chars(messages)
        if size > limit:
            raise TemplateError(
                f"chat template produced more than {limit:,} characters and was stopped"
            )
        return limit
