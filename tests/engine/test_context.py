"""The context budget drops the oldest whole turns, keeps the system prompt and the new
message, reports what it dropped, and refuses what can never fit."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.engine.context import plan_context, plan_prompt
from desktop.errors import ContextOverflowError


def render(messages):
    return " ".join(f"{m['role']}: {m['content']}" for m in messages)


def encode(text):
    return text.split()  # one token per word keeps the arithmetic checkable by hand


def conversation(turns, words=5):
    msgs = [{"role": "system", "content": "sys"}]
    for i in range(turns):
        msgs.append({"role": "user", "content": " ".join([f"u{i}"] * words)})
        msgs.append({"role": "assistant", "content": " ".join([f"a{i}"] * words)})
    msgs.append({"role": "user", "content": "last question"})
    return msgs


def test_everything_fits():
    msgs = conversation(2)
    plan = plan_context(msgs, render, encode, context_length=100, reserve=10)
    assert plan.dropped == []
    assert plan.messages == msgs
    assert plan.used == len(plan.prompt_ids) + 10


def test_oldest_turns_dropped_first_keeping_system_and_last():
    msgs = conversation(4)  # each turn: 2 messages × 6 tokens; system 2; last 3
    # total = 2 + 4*12 + 3 = 53 tokens; budget 40 - 10 = 30 → keep 2 newest turns (29)
    plan = plan_context(msgs, render, encode, context_length=40, reserve=10)
    assert plan.dropped == [1, 2, 3, 4]
    assert plan.messages[0]["role"] == "system"
    assert plan.messages[-1]["content"] == "last question"
    assert [m["content"].split()[0] for m in plan.messages[1:-1]] == ["u2", "a2", "u3", "a3"]
    assert len(plan.prompt_ids) <= 30


def test_never_keeps_an_answer_without_its_question():
    msgs = conversation(3)
    for budget in range(12, 45):
        plan = plan_context(msgs, render, encode, context_length=budget + 5, reserve=5)
        kept = plan.messages[1:-1]
        assert not kept or kept[0]["role"] == "user"


def test_a_single_message_longer_than_the_context_is_a_clear_error():
    msgs = [{"role": "user", "content": "word " * 500}]
    with pytest.raises(ContextOverflowError, match="your message is 501 tokens"):
        plan_context(msgs, render, encode, context_length=100, reserve=10)


def test_a_reply_reserve_that_leaves_no_room_says_how_far_to_lower_it():
    """A message that fits the context alone, with a reply longer than what is left: the
    advice is the largest reply that fits, and the number is the one asked for (not the
    context less one it is held to)."""
    msgs = conversation(2)
    with pytest.raises(ContextOverflowError) as info:
        plan_context(msgs, render, encode, context_length=100, reserve=100_000)
    # system "system: sys" (2) + "user: last question" (3) = 5 tokens at the least
    assert str(info.value) == (
        "your message with the system prompt is 5 tokens, and with 100,000 reserved for the "
        "reply it does not fit the model's context of 100; lower max new tokens to 95 or less, "
        "or shorten the message")
    with pytest.raises(ContextOverflowError) as info:
        plan_context(msgs[1:], render, encode, context_length=100, reserve=98)
    assert str(info.value).startswith("your message is 3 tokens, and with 98 reserved")
    assert "lower max new tokens to 97 or less" in str(info.value)
    assert info.value.reply_room == 97
    assert plan_context(msgs, render, encode, context_length=100, reserve=95).dropped == [1, 2,
                                                                                          3, 4]


def test_a_system_prompt_longer_than_the_context_is_named():
    msgs = [{"role": "system", "content": "rule " * 500}, {"role": "user", "content": "hi"}]
    with pytest.raises(ContextOverflowError, match="system prompt"):
        plan_context(msgs, render, encode, context_length=100, reserve=10)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 12), st.integers(1, 30), st.integers(20, 200), st.integers(1, 50))
def test_plan_always_fits_or_raises(turns, words, context, reserve):
    msgs = conversation(turns, words)
    try:
        plan = plan_context(msgs, render, encode, context_length=context, reserve=reserve)
    except ContextOverflowError:
        return
    assert len(plan.prompt_ids) + min(reserve, context - 1) <= context
    assert plan.messages[0] == msgs[0] and plan.messages[-1] == msgs[-1]
    kept_middle = [i for i in range(1, len(msgs) - 1) if i not in plan.dropped]
    # Dropped messages are a prefix of the history: the newest turns are what stays.
    assert plan.dropped == list(range(1, 1 + len(plan.dropped)))
    assert len(plan.messages) == 2 + len(kept_middle)


def test_a_huge_paste_is_refused_before_tokenizing():
    calls = []

    def counting_encode(text):
        calls.append(len(text))
        return encode(text)

    msgs = [{"role": "user", "content": "x" * 1_000_000}]
    with pytest.raises(ContextOverflowError, match="1,000,000 characters"):
        plan_context(msgs, render, counting_encode, context_length=8192, reserve=512,
                     max_chars_per_token=16)
    assert calls == []


def test_a_paste_too_long_only_for_the_reserve_gets_the_reserve_advice():
    """The cheap character check refuses only what the whole context cannot hold: a message
    that fits with a shorter reply is tokenized, so that the error can say so."""
    msgs = [{"role": "user", "content": "word " * 30}]  # 150 characters, 31 tokens
    with pytest.raises(ContextOverflowError) as info:
        plan_context(msgs, render, encode, context_length=100, reserve=90, max_chars_per_token=5)
    assert info.value.reply_room == 69
    with pytest.raises(ContextOverflowError) as info:
        plan_prompt("one two three four five six seven", encode, context_length=10, reserve=9,
                    max_chars_per_token=4)
    assert str(info.value).startswith("the prompt is 7 tokens, and with 9 reserved")
    with pytest.raises(ContextOverflowError, match="501 characters, more than the model's "
                       "context of 100 tokens can hold; shorten it"):
        plan_context([{"role": "user", "content": "x" * 501}], render, encode,
                      context_length=100, reserve=10, max_chars_per_token=5)


def test_a_raw_prompt_fits_with_its_reserve_or_says_by_how_much_not():
    plan = plan_prompt("one two three", encode, context_length=10, reserve=7)
    assert (plan.prompt_ids, plan.messages, plan.dropped) == (["one", "two", "three"], [], [])
    assert plan.max_new_tokens == 7
    with pytest.raises(ContextOverflowError) as info:
        plan_prompt("one two three four", encode, context_length=10, reserve=7)
    assert str(info.value) == (
        "the prompt is 4 tokens, and with 7 reserved for the continuation it does not fit the "
        "model's context of 10; lower max_tokens to 6 or less, or shorten the prompt")
    with pytest.raises(ContextOverflowError) as info:
        plan_prompt("word " * 12, encode, context_length=10, reserve=7)
    assert str(info.value) == ("the prompt is 12 tokens but the model's context holds 10 with 7 "
                               "reserved for the continuation; shorten the prompt")
    assert info.value.reply_room is None


def test_a_huge_raw_prompt_is_refused_before_tokenizing():
    def never(text):
        raise AssertionError("tokenized")

    with pytest.raises(ContextOverflowError, match="the prompt is 1,000,000 characters"):
        plan_prompt("x" * 1_000_000, never, context_length=8192, reserve=512,
                    max_chars_per_token=16)


def test_a_huge_earlier_message_is_left_out_without_tokenizing_it():
    # A chat reopened with a million-digit first message: that message (a user's, not a
    # system prompt) and the reply to it are left out, and the rest is planned as usual.
    calls = []

    def counting_encode(text):
        calls.append(len(text))
        return encode(text)

    msgs = [{"role": "user", "content": "7" * 1_000_000},
            {"role": "assistant", "content": "that is a lot of sevens"},
            {"role": "user", "content": "and now?"},
            {"role": "assistant", "content": "now it is short"},
            {"role": "user", "content": "good"}]
    plan = plan_context(msgs, render, counting_encode, context_length=8192, reserve=512,
                        max_chars_per_token=16)
    assert plan.dropped == [0, 1]
    assert [m["content"] for m in plan.messages] == ["and now?", "now it is short", "good"]
    assert calls and max(calls) < 1000  # the million characters were never tokenized
