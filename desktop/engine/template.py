"""Chat templates: the model's own Jinja template, rendered in a sandbox with bounds.

Templates come from model folders people download, so they are code from strangers. They run
in Jinja's immutable sandbox (no access to Python internals), with a bound on output size,
on string/list repetition, and on wall time (enforced by a trace hook that only watches the
template's own frames), so a hostile template fails with a clear error instead of hanging or
eating memory.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from desktop.errors import ModelError

#: Used when a model folder has no template: documented in models/README.md.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

MAX_OUTPUT_CHARS = 4_000_000
MAX_RENDER_SECONDS = 2.0
_MAX_REPEAT = 1_000_000


class TemplateError(ModelError):
    """The chat template failed, broke a bound, or raised ``raise_exception``."""


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """A sandbox that also refuses huge repetitions (``'x' * 10**9``) and powers."""

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


def _raise_exception(message: str) -> None:
    raise TemplateError(f"chat template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


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
        env = _BoundedEnvironment(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols"],
            undefined=jinja2.ChainableUndefined,
        )
        env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        try:
            self._template = env.from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"chat template has a syntax error on line {exc.lineno}: {exc.message}; "
                "fix chat_template.jinja in the model folder or delete it to use the plain format"
            ) from None
        self._specials = {"bos_token": bos_token, "eos_token": eos_token}

    def render(
        self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Render ``messages`` ([{role, content}]) to the prompt text the model expects."""
        deadline = time.monotonic() + self._max_seconds
        code = self._template.root_render_func.__code__
        filename = code.co_filename

        def local_trace(frame: Any, event: str, arg: Any) -> Any:
            if time.monotonic() > deadline:
                raise TemplateError(
                    f"chat template took longer than {self._max_seconds:g} s and was stopped"
                )
            return local_trace

        def global_trace(frame: Any, event: str, arg: Any) -> Any:
            return local_trace if frame.f_code.co_filename == filename else None

        previous = sys.gettrace()
        sys.settrace(global_trace)
        pieces: list[str] = []
        size = 0
        try:
            for chunk in self._template.generate(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                **self._specials,
            ):
                size += len(chunk)
                if size > self._max_chars:
                    raise TemplateError(
                        f"chat template produced more than {self._max_chars:,} characters "
                        "and was stopped"
                    )
                pieces.append(chunk)
        except TemplateError:
            raise
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(
                f"chat template tried something unsafe and was stopped: {exc}"
            ) from None
        except Exception as exc:  # a stranger's template may raise anything
            raise TemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from None
        finally:
            sys.settrace(previous)
        return "".join(pieces)
