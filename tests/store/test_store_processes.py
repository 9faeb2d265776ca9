"""Several processes on one history at once, as two windows, a window and terminal chats, or
``onnxchat history`` beside them are: real processes started together, every round."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from desktop.store import CANCELLED, COMPLETE, INTERRUPTED, STREAMING, ChatStore

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
ROUNDS = 20

# Imports first, then waits on standard input, so that all the processes of a round open the
# store at the same moment; then does what a front end does at start, and an import.
_STARTING = textwrap.dedent("""
    import sys
    from pathlib import Path
    from desktop.store import ChatStore, Repro
    print("ready", flush=True)
    sys.stdin.readline()
    with ChatStore.open(sys.argv[1]) as store:
        notice = store.take_notice()
        chat = store.create_conversation("mine")
        store.add_message(chat.id, "user", "hello")
        repro = Repro(model="m", manifest_sha256="0" * 64, device="cpu", sampling={},
                      seed=1, prompt_tokens=3)
        writer = store.begin_reply(chat.id, repro)
        writer.append("hi")
        writer.cancel()
        store.import_json(Path(sys.argv[2]).read_bytes())
    print(notice or "", flush=True)
""")


def _start_together(data_dir: Path, history_file: Path) -> list[subprocess.CompletedProcess]:
    children = [subprocess.Popen([sys.executable, "-c", _STARTING, str(data_dir),
                                  str(history_file)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=REPO) for _ in range(PROCESSES)]
    results = []
    try:
        for child in children:
            assert child.stdout.readline() == "ready\n", child.stderr.read()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, err = child.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return results


def _history_file(tmp_path: Path) -> Path:
    with ChatStore.open(tmp_path / "source") as store:
        chat = store.create_conversation("Imported")
        store.add_message(chat.id, "user", "from another machine")
        path = tmp_path / "history.json"
        path.write_bytes(store.export_json())
    return path


def test_processes_starting_together_on_a_new_folder(tmp_path: Path) -> None:
    # Issue #13: two `onnxchat history import` at once on a folder without a history failed
    # with "table conversations already exists" in 6 of 10 rounds.
    history_file = _history_file(tmp_path)
    for index in range(ROUNDS):
        data_dir = tmp_path / f"round{index}"
        results = _start_together(data_dir, history_file)
        for result in results:
            assert result.returncode == 0 and result.stderr == "", (index, result.stderr)
            assert result.stdout == "\n"  # nothing to tell: the folder was new
        with ChatStore.open(data_dir) as store:
            titles = sorted(c.title for c in store.list_conversations())
            assert titles == ["Imported"] + ["mine"] * PROCESSES
            for conversation in store.list_conversations():
                states = [m.state for m in store.messages(conversation.id)]
                assert states == ([COMPLETE] if conversation.title == "Imported"
                                  else [COMPLETE, CANCELLED])


def test_processes_starting_together_on_a_damaged_file_tell_it_once(
        tmp_path: Path, damaged_history) -> None:
    history_file = _history_file(tmp_path)
    for index in range(4):
        data_dir = tmp_path / f"round{index}"
        damaged_history(data_dir)

        results = _start_together(data_dir, history_file)
        for result in results:
            assert result.returncode == 0 and result.stderr == "", (index, result.stderr)
        (moved,) = data_dir.glob("chats.sqlite3.corrupt-????????-??????")
        told = [r.stdout.strip() for r in results if r.stdout.strip()]
        assert told == [f"The chat history file was damaged; it was moved to {moved} and a "
                        "new, empty history was started."]


_WRITING = textwrap.dedent("""
    import sys
    from desktop.store import ChatStore, Repro
    store = ChatStore.open(sys.argv[1])
    chat = store.create_conversation("Live")
    store.add_message(chat.id, "user", "tell me a story")
    repro = Repro(model="m", manifest_sha256="0" * 64, device="cpu", sampling={}, seed=7,
                  prompt_tokens=12)
    writer = store.begin_reply(chat.id, repro, commit_interval_s=0.0)
    writer.append("Once upon a time")
    print(chat.id, writer.message_id, flush=True)
    sys.stdin.readline()  # still writing: the reply stays open until told
""")


def test_opening_beside_a_live_reply_leaves_it_streaming(data_dir: Path) -> None:
    # Issue #13: a second window marked the first window's live reply "interrupted".
    child = subprocess.Popen([sys.executable, "-c", _WRITING, str(data_dir)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        chat_id, reply_id = child.stdout.readline().split()
        for _ in range(3):  # a second window, a terminal, `onnxchat history`
            with ChatStore.open(data_dir) as store:
                reply = store.get_message(reply_id)
                assert (reply.state, reply.text) == (STREAMING, "Once upon a time")
        history = subprocess.run([sys.executable, "-m", "desktop", "history", "--data-dir",
                                  str(data_dir), "export", "--format", "json", "-"],
                                 capture_output=True, text=True, cwd=REPO, check=True)
        (conversation,) = json.loads(history.stdout)["conversations"]
        assert conversation["messages"][1]["state"] == STREAMING
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdin.close()
        child.stdout.close()
    # Its process is gone now (its pid may even be reused): the next open marks it.
    with ChatStore.open(data_dir) as store:
        user, reply = store.messages(chat_id)
        assert (user.text, user.state) == ("tell me a story", COMPLETE)
        assert (reply.id, reply.state, reply.text) == (reply_id, INTERRUPTED, "Once upon a time")
        assert [h.message_id for h in store.search("upon")] == [reply_id]
    assert list((data_dir / "chats.sqlite3.writers").iterdir()) == []  # its lease swept
