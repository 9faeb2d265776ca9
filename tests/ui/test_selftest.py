"""``onnxchat --self-test`` as the packaged app's smoke test runs it: a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_self_test_chats_once_and_reads_the_conversation_back(default_model, tmp_path):
    env = {**os.environ, "ONNXCHAT_MODELS_DIR": str(default_model.parent)}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must go offscreen by itself
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "--self-test", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnxchat self-test passed:")
    assert "smollm2-135m-instruct" in lines[0]
    assert result.stderr == ""
    assert (tmp_path / "data" / "chats.sqlite3").is_file()


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
