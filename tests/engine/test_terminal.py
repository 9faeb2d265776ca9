"""The interactive terminal chat, driven line by line as a person types."""

from __future__ import annotations

import argparse
import io

from desktop import terminal


def scripted(lines):
    queue = list(lines)

    def read_line(prompt: str) -> str:
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read_line


def args_for(default_model, **overrides):
    values = {"model": str(default_model), "device": "cpu", "threads": 2, "system": None,
              "prompt": None, "stats": False, "temperature": 0.0, "top_k": None, "top_p": None,
              "min_p": None, "repetition_penalty": 1.0, "seed": None, "max_new_tokens": 8}
    return argparse.Namespace(**(values | overrides))


def test_a_conversation_with_commands(default_model):
    out, err = io.StringIO(), io.StringIO()
    code = terminal.run(
        args_for(default_model),
        out, err,
        scripted(["/system Answer in one word.", "What colour is the sky?", "/stats",
                  "And grass?", "/reset", "/nonsense", "/help", "", "/exit"]),
    )
    text = out.getvalue()
    assert code == 0
    assert "(system prompt set)" in text
    assert text.count("Assistant: ") == 2
    assert "tok/s" in text  # /stats turned the per-reply line on for the second reply
    assert "(new conversation)" in text
    assert "unknown command /nonsense" in text
    assert "/reset (new conversation)" in text  # the help text
    assert err.getvalue() == ""


def test_end_of_input_quits_cleanly(default_model):
    out = io.StringIO()
    assert terminal.run(args_for(default_model), out, io.StringIO(), scripted([])) == 0


def test_a_message_that_cannot_fit_is_reported_and_the_chat_goes_on(default_model):
    out, err = io.StringIO(), io.StringIO()
    code = terminal.run(args_for(default_model), out, err,
                        scripted(["word " * 200_000, "Hello", "/exit"]))
    assert code == 0
    assert "error: your message is" in err.getvalue()
    assert out.getvalue().count("Assistant: ") == 1
