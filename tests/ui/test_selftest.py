"""``onnxchat --self-test`` as the packaged app's smoke test runs it: a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_self_test_chats_once_and_reads_the_conversation_back(default_model, tmp_path):
    """It chats in a history of its own inside the data folder and removes it: the user's
    chats and window settings stay as they were, and it passes every time it is run."""
    from desktop.store import ChatStore

    data = tmp_path / "data"
    with ChatStore.open(data) as store:
        mine = store.create_conversation("My recipes")
        store.add_message(mine.id, "user", "My secret recipe is X")
    (data / "window.ini").write_text(f"[chat]\nlast_conversation={mine.id}\n")
    env = {**os.environ, "ONNXCHAT_MODELS_DIR": str(default_model.parent)}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must go offscreen by itself
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "desktop", "--self-test", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=600, env=env, check=False)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("onnxchat self-test passed:")
        assert "smollm2-135m-instruct" in lines[0]
        assert result.stderr == ""
    with ChatStore.open(data) as store:
        assert [c.title for c in store.list_conversations()] == ["My recipes"]
        assert [m.text for m in store.messages(mine.id)] == ["My secret recipe is X"]
    assert (data / "window.ini").read_text() == f"[chat]\nlast_conversation={mine.id}\n"
    assert not [p for p in data.iterdir() if p.name.startswith(".onnxchat-selftest-")]


def test_self_test_refuses_a_data_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "--self-test", "--data-dir", str(tmp_path / "file")],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("onnxchat self-test failed: cannot create a history in ")


def test_self_test_reports_a_missing_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "--self-test", "--model", str(tmp_path / "nothing"),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("onnxchat self-test failed:")
    assert "nothing" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland check")
def test_without_a_display_the_window_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("onnxchat: error: no display")
    assert len(result.stderr.strip().splitlines()) == 1
