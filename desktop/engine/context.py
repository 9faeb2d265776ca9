"""The context budget: what of a conversation the model can see this turn.

Before each turn the rendered prompt (system prompt + history + the new message) plus a reserve
for the reply must fit the model's context. When it does not, the oldest turns are dropped —
never the system prompt, never the latest user message — and the plan says exactly which were
dropped, so the UI can tell the user instead of truncating silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from desktop.errors import ContextOverflowError

Message = dict[str, str]


@dataclass(frozen=True)
class ContextPlan:
    """The prompt for this turn and how it was made to fit."""

    prompt_ids: list[int]
    messages: list[Message]  # what the model sees
    dropped: list[int]  # indices (into the given messages) left out, oldest first
    context_length: int
    reserve: int

    @property
    def used(self) -> int:
        """Tokens of the prompt plus the reply reserve."""
        return len(self.prompt_ids) + self.reserve

    @property
    def max_new_tokens(self) -> int:
        """How long the reply may run before the context is full."""
        return self.context_length - len(self.prompt_ids)


def plan_context(
    messages: Sequence[Message],
    render: Callable[[Sequence[Message]], str],
    encode: Callable[[str], list[int]],
    context_length: int,
    reserve: int,
    max_chars_per_token: int | None = None,
) -> ContextPlan:
    """Fit ``messages`` into ``context_length - reserve`` tokens by dropping the oldest turns.

    ``messages`` may start with a system message; the last one is the user's new message.
    With ``max_chars_per_token`` (the longest token's length), a message that cannot fit even
    at that best case is refused before tokenizing it — a 1 MB paste costs nothing — and an
    earlier message that long is left out, with everything before it, without tokenizing it.
    """
    if not messages:
        raise ValueError("no messages to plan")
    asked, reserve = reserve, max(1, min(reserve, context_length - 1))
    budget = context_length - reserve
    has_system = messages[0].get("role") == "system"
    head = [0] if has_system else []
    body = list(range(len(head), len(messages) - 1))
    last = len(messages) - 1

    def too_long(message: Message, tokens: int) -> bool:
        return bool(max_chars_per_token) and (
            len(message.get("content", "")) > tokens * max_chars_per_token)

    # Too long for the whole context, whatever the reply's reserve (one shorter than that
    # is tokenized below, so that the error can say how far to lower the reserve instead).
    for message, what in ((messages[-1], "your message"),
                          (messages[0] if has_system else None, "the system prompt")):
        if message is not None and too_long(message, context_length):
            raise ContextOverflowError(
                f"{what} is {len(message.get('content', '')):,} characters, more than the "
                f"model's context of {context_length:,} tokens can hold; shorten it"
            )
    # Messages are dropped oldest first, so one that can never fit takes all before it along.
    first = max((n + 1 for n, i in enumerate(body) if too_long(messages[i], budget)),
                default=0)

    def attempt(drop: int) -> tuple[list[int], list[int]]:
        keep = head + body[drop:] + [last]
        return keep, encode(render([messages[i] for i in keep]))

    if first == 0:
        keep, ids = attempt(0)
        if len(ids) <= budget:
            return ContextPlan(ids, [messages[i] for i in keep], [], context_length, reserve)

    # Binary search for the fewest dropped messages that fit (more dropped → fewer tokens).
    low, high = max(1, first), len(body)
    best: tuple[int, list[int], list[int]] | None = None
    while low <= high:
        mid = (low + high) // 2
        keep, ids = attempt(mid)
        if len(ids) <= budget:
            best, high = (mid, keep, ids), mid - 1
        else:
            low = mid + 1
    if best is None:
        _raise_overflow(messages, render, encode, has_system, budget, context_length, asked)
    drop, keep, ids = best
    # Drop whole turns: never leave an assistant reply without the question it answered.
    while drop < len(body) and messages[body[drop]].get("role") == "assistant":
        drop += 1
        keep, ids = attempt(drop)
    return ContextPlan(ids, [messages[i] for i in keep], body[:drop], context_length, reserve)


def _raise_overflow(
    messages: Sequence[Message],
    render: Callable[[Sequence[Message]], str],
    encode: Callable[[str], list[int]],
    has_system: bool,
    budget: int,
    context_length: int,
    reserve: int,
) -> None:
    needed = len(encode(render([messages[0], messages[-1]] if has_system else [messages[-1]])))
    if needed < context_length:  # it fits with a shorter reply: the reserve is what to change
        what = "your message with the system prompt" if has_system else "your message"
        raise _reserve_advice(what, needed, context_length, reserve, "reply", "max new tokens",
                              "the message")
    if has_system:
        system_tokens = len(encode(render([messages[0]])))
        if system_tokens > budget:
            raise ContextOverflowError(
                f"the system prompt alone is {system_tokens:,} tokens but the model's context "
                f"holds {context_length:,} with {reserve:,} reserved for the reply; "
                "shorten the system prompt"
            )
    alone = len(encode(render([messages[-1]])))
    raise ContextOverflowError(
        f"your message is {alone:,} tokens but the model's context holds {context_length:,} "
        f"with {reserve:,} reserved for the reply; shorten the message"
    )


def _reserve_advice(what: str, tokens: int, context_length: int, reserve: int, reply: str,
                    setting: str, text: str) -> ContextOverflowError:
    """The error for a prompt that fits the context alone but not with the reply's reserve:
    how far to lower the setting that asked for that reserve."""
    room = context_length - tokens
    return ContextOverflowError(
        f"{what} is {tokens:,} tokens, and with {reserve:,} reserved for the {reply} it does "
        f"not fit the model's context of {context_length:,}; lower {setting} to {room:,} or "
        f"less, or shorten {text}", reply_room=room)


def plan_prompt(
    text: str,
    encode: Callable[[str], list[int]],
    context_length: int,
    reserve: int,
    max_chars_per_token: int | None = None,
) -> ContextPlan:
    """The plan for raw prompt text (no turns to drop): it fits with ``reserve`` tokens kept for
    the continuation, or :class:`ContextOverflowError` says by how much it does not."""
    if not text:
        raise ValueError("no prompt to plan")
    asked, reserve = reserve, max(1, min(reserve, context_length - 1))
    budget = context_length - reserve
    if max_chars_per_token and len(text) > context_length * max_chars_per_token:
        raise ContextOverflowError(
            f"the prompt is {len(text):,} characters, more than the model's context of "
            f"{context_length:,} tokens can hold; shorten it"
        )
    ids = encode(text)
    if len(ids) > budget:
        if len(ids) < context_length:
            raise _reserve_advice("the prompt", len(ids), context_length, asked, "continuation",
                                  "max_tokens", "the prompt")
        raise ContextOverflowError(
            f"the prompt is {len(ids):,} tokens but the model's context holds "
            f"{context_length:,} with {asked:,} reserved for the continuation; shorten the "
            "prompt"
        )
    return ContextPlan(ids, [], [], context_length, reserve)
