"""The terminal chat, driven line by line as a person types, and the history it keeps."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from desktop import terminal
from desktop.engine import ChatEngine, SamplingSettings, load_model
from desktop.engine.manifest import read_manifest
from desktop.store import CANCELLED, COMPLETE, ChatStore
from desktop.text import cell_width


def scripted(lines):
    queue = list(lines)

    def read_line(prompt: str) -> str:
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read_line


def args_for(default_model, data_dir, **overrides):
    values = {"model": str(default_model), "device": "cpu", "threads": 2, "system": None,
              "prompt": None, "stats": False, "temperature": 0.0, "top_k": None, "top_p": None,
              "min_p": None, "repetition_penalty": 1.0, "seed": None, "max_new_tokens": 8,
              "resume": None, "no_history": False, "data_dir": str(data_dir),
              "kv_cache": "fp32"}
    return argparse.Namespace(**(values | overrides))


def chat(default_model, data_dir, lines, **overrides):
    out, err = io.StringIO(), io.StringIO()
    code = terminal.run(args_for(default_model, data_dir, **overrides), out, err,
                        scripted(lines))
    return code, out.getvalue(), err.getvalue()


def onnxchat(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", *args], input=stdin,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_conversation_with_commands(default_model, tmp_path):
    code, text, err = chat(default_model, tmp_path, [
        "/system Answer in one word.", "What colour is the sky?", "/stats", "And grass?",
        "/new", "/nonsense", "/help", "", "/exit"])
    assert code == 0
    assert "(system prompt set)" in text
    assert text.count("Assistant: ") == 2
    assert "tok/s" in text  # /stats turned the per-reply line on for the second reply
    assert "(new conversation)" in text
    assert "unknown command /nonsense" in text
    assert "/new (new conversation)" in text  # the help text
    assert err == ""
    with ChatStore.open(tmp_path) as store:
        (conversation,) = store.list_conversations()
        assert conversation.system_prompt == "Answer in one word."
        assert [m.role for m in store.messages(conversation.id)] == ["user", "assistant"] * 2


def test_end_of_input_quits_cleanly(default_model, tmp_path):
    assert chat(default_model, tmp_path, [])[0] == 0


def test_a_message_that_cannot_fit_is_reported_and_nothing_is_stored(default_model, tmp_path):
    code, text, err = chat(default_model, tmp_path, ["word " * 200_000, "/exit"])
    assert code == 0
    assert "error: your message is" in err
    assert "Assistant: " not in text
    with ChatStore.open(tmp_path) as store:
        assert store.list_conversations() == []


def test_the_terminal_chat_is_kept_in_the_history_with_its_reproducibility_record(
        default_model, tmp_path):
    # Issue #13: `printf 'Say hello\n/exit\n' | onnxchat chat; onnxchat history list` said
    # "No conversations yet.".
    data = ["--data-dir", str(tmp_path)]
    result = onnxchat("chat", *data, "--model", str(default_model), "--device", "cpu",
                      "--temperature", "0", "--max-new-tokens", "12", stdin="Say hello\n/exit\n")
    assert result.returncode == 0, result.stderr
    listed = onnxchat("history", *data, "list")
    assert listed.returncode == 0 and "No conversations yet" not in listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.endswith("  Say hello")

    with ChatStore.open(tmp_path) as store:
        (conversation,) = store.list_conversations()
        user, reply = store.messages(conversation.id)
    assert (user.role, user.text, user.state) == ("user", "Say hello", COMPLETE)
    assert reply.role == "assistant" and reply.state == COMPLETE and reply.text
    assert reply.text in result.stdout
    assert conversation.model == reply.repro.model == "smollm2-135m-instruct"
    assert conversation.sampling == {"temperature": 0.0, "max_new_tokens": 12}
    manifest = read_manifest(default_model)
    assert reply.repro.manifest_sha256 == manifest.sha256
    assert reply.repro.device == "cpu" and reply.repro.stop_reason in ("eos", "length")
    assert reply.stats.completion_tokens > 0
    # The record regenerates the same text.
    engine = ChatEngine(load_model(default_model, device="cpu", threads=2))
    settings = SamplingSettings.from_dict({**reply.repro.sampling, "seed": reply.repro.seed})
    again = engine.reply([{"role": "user", "content": "Say hello"}], settings)
    assert "".join(again) == reply.text


def test_one_shot_is_kept_and_resumed_and_no_history_keeps_nothing(default_model, tmp_path):
    data = ["--data-dir", str(tmp_path)]
    common = ["--model", str(default_model), "--device", "cpu", "--temperature", "0",
              "--max-new-tokens", "6"]
    first = onnxchat("chat", *data, *common, "--prompt", "Name a colour.")
    assert first.returncode == 0, first.stderr
    later = onnxchat("chat", *data, *common, "--resume", "--prompt", "Another one?")
    assert later.returncode == 0, later.stderr
    throwaway = onnxchat("chat", *data, *common, "--no-history", "--prompt", "Forget me.")
    assert throwaway.returncode == 0 and throwaway.stdout.strip(), throwaway.stderr
    with ChatStore.open(tmp_path) as store:
        (conversation,) = store.list_conversations()
        branch = store.messages(conversation.id)
    assert [(m.role, m.state) for m in branch] == [("user", COMPLETE), ("assistant", COMPLETE)] * 2
    assert [m.text for m in branch[::2]] == ["Name a colour.", "Another one?"]
    assert branch[1].text == first.stdout.strip()

    clash = onnxchat("chat", *data, *common, "--no-history", "--resume", "--prompt", "x")
    assert clash.returncode == 2
    assert clash.stderr.strip() == ("onnxchat: error: --resume continues a chat from the "
                                    "history; leave out --no-history.")
    unknown = onnxchat("chat", *data, *common, "--resume", "nope", "--prompt", "x")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("onnxchat: error: No conversation 'nope'")


def test_chats_lists_conversations_and_open_continues_one(default_model, tmp_path):
    with ChatStore.open(tmp_path) as store:
        old = store.create_conversation("Birds", system_prompt="Be brief.")
        store.add_message(old.id, "user", "Tell me about puffins")
        writer = store.begin_reply(old.id, _repro(default_model))
        writer.append("Puffins are seabirds")
        writer.cancel()
        store.create_conversation("Fish")
    code, text, err = chat(default_model, tmp_path, [
        "/chats", "/open 2", "And their beaks?", "/open 9", "/open", "/exit"])
    assert code == 0
    assert "  1. Fish  (" in text and "  2. Birds  (" in text
    assert "(continuing “Birds”, 2 messages)" in text
    assert "Assistant: Puffins are seabirds [stopped]" in text
    assert "error: There is no conversation 9; /chats lists them." in err
    assert "error: /open needs a number from /chats or a conversation id." in err
    with ChatStore.open(tmp_path) as store:
        branch = store.messages(old.id)
    assert [m.text for m in branch[:3]] == ["Tell me about puffins", "Puffins are seabirds",
                                            "And their beaks?"]
    assert branch[1].state == CANCELLED and branch[3].state == COMPLETE

    code, text, err = chat(default_model, tmp_path, ["/chats"], no_history=True)
    assert "error: The history is off in this chat (--no-history)." in err
    assert "This chat is not kept (--no-history)." in text


def test_opening_a_conversation_leaves_its_system_prompt_alone(default_model, tmp_path):
    """/system changes the conversation on screen; browsing with /open, /new or a --system
    given on the command line changes no other conversation (--system applies to the one
    --resume opens)."""
    with ChatStore.open(tmp_path) as store:
        travel = store.create_conversation("Trip", system_prompt="You are a travel agent.")
        plain = store.create_conversation("Plain")
    code, _, err = chat(default_model, tmp_path, [
        "/system Answer only in French.", f"/open {travel.id}", f"/open {plain.id}", "/new",
        f"/open {travel.id}", "/new", f"/open {plain.id}", "/exit"], system="Be terse.")
    assert code == 0, err
    with ChatStore.open(tmp_path) as store:
        assert store.get_conversation(travel.id).system_prompt == "You are a travel agent."
        assert store.get_conversation(plain.id).system_prompt == ""
    code, _, err = chat(default_model, tmp_path, ["/exit"], system="Be terse.",
                        resume=plain.id)
    assert code == 0, err
    with ChatStore.open(tmp_path) as store:
        assert store.get_conversation(plain.id).system_prompt == "Be terse."
        assert store.get_conversation(travel.id).system_prompt == "You are a travel agent."


def _repro(default_model):
    from desktop.store import Repro

    return Repro(model="smollm2-135m-instruct", manifest_sha256=read_manifest(default_model)
                 .sha256, device="cpu", sampling={}, seed=1, prompt_tokens=10)


def test_a_damaged_history_is_told_once(default_model, tmp_path, damaged_history):
    damaged_history(tmp_path)
    code, _, err = chat(default_model, tmp_path, [])
    (moved,) = tmp_path.glob("chats.sqlite3.corrupt-????????-??????")
    assert code == 0
    assert err == (f"onnxchat: The chat history file was damaged; it was moved to {moved} and "
                   "a new, empty history was started.\n")
    assert chat(default_model, tmp_path, [])[2] == ""  # told once


def test_an_empty_prompt_is_refused_before_anything_is_loaded_or_kept(tmp_path):
    for prompt in ("", "   "):
        result = onnxchat("--data-dir", str(tmp_path), "chat", "--prompt", prompt)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr == ("onnxchat: error: --prompt is empty: give the message to send, "
                                 "or leave --prompt out to chat.\n")
    assert not (tmp_path / "chats.sqlite3").exists()


@pytest.mark.parametrize("threads", ["0", "257"])
def test_a_thread_count_out_of_range_is_one_line(default_model, tmp_path, threads):
    """Refused before the model is opened: it used to reach the CPU copy's build first, which
    logged a warning about folding above the error."""
    result = onnxchat("--data-dir", str(tmp_path), "chat", "--model", str(default_model),
                      "--device", "cpu", "--threads", threads, "--prompt", "Hi")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"onnxchat: error: threads = {threads} is out of range: "
                             "valid is [1, 256]\n")


def test_titles_are_listed_on_one_line_whatever_they_hold(default_model, tmp_path):
    """A title from an imported file may hold line breaks or terminal escape sequences: the
    listings show them escaped, so no row is forged and the terminal is not recoloured."""
    with ChatStore.open(tmp_path) as store:
        store.create_conversation("Line one\nFAKEID  2099-01-01 00:00  injected")
        store.create_conversation("\x1b[31mRED\x1b[0m \x1b]0;pwned\x07")
    listed = onnxchat("--data-dir", str(tmp_path), "history", "list")
    assert listed.returncode == 0
    rows = listed.stdout.splitlines()
    assert len(rows) == 2 and "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert rows[0].endswith("\\x1b[31mRED\\x1b[0m \\x1b]0;pwned\\x07")
    assert rows[1].endswith("Line one\\nFAKEID  2099-01-01 00:00  injected")
    code, text, _ = chat(default_model, tmp_path, ["/chats", "/exit"])
    assert code == 0 and "\x1b" not in text and "  1. \\x1b[31mRED" in text


def columns(line: str) -> int:
    return sum(cell_width(char) for char in line)


class _Terminal(io.StringIO):
    """Output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_replies_are_wrapped_between_words_and_kept_as_written(
        default_model, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "31")  # what shutil.get_terminal_size reads first
    out, err = _Terminal(), io.StringIO()
    code = terminal.run(args_for(default_model, tmp_path, max_new_tokens=120), out, err,
                        scripted(["/help", "Write the numbers from 1 to 100, separated by "
                                  "commas."]))  # long on every CPU: greedy, no penalty
    assert code == 0 and err.getvalue() == ""
    before, shown = out.getvalue().split("Assistant: ", 1)
    shown = shown.rstrip("\n")
    assert "/open N" in before and "Type /help" in before  # the greeting and the help, wrapped
    assert all(columns(line) <= 30 for line in before.split("\n"))
    with ChatStore.open(tmp_path) as store:
        (conversation,) = store.list_conversations()
        reply = store.messages(conversation.id)[-1].text
    assert len(reply) > 60  # long enough to need wrapping at 30 columns
    assert shown.split() == reply.split()  # the same words, only broken into lines
    lines = ("Assistant: " + shown).split("\n")
    assert len(lines) > 2
    prose = "".join(line + "\n" for n, line in enumerate(shown.split("```")) if n % 2 == 0)
    assert all(columns(line) <= 30 or " " not in line.strip()
               for line in ("Assistant: " + prose).split("\n"))  # code blocks are as written
    # a resumed chat shows its last exchange wrapped the same way
    again = _Terminal()
    assert terminal.run(args_for(default_model, tmp_path, resume="last"), again, err,
                        scripted([])) == 0
    assert f"Assistant: {shown}\n" in again.getvalue()
