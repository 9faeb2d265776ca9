"""Quick commands stay quick: ``--help``, ``history …`` and ``models`` run in a real process
without importing numpy, ONNX Runtime or Qt (the engine and the window load only for the
commands that use them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("numpy", "onnxruntime", "PySide6")

#: Runs ``onnxchat`` and, at exit, prints the heavy packages that were imported.
PROBE = f"""
import atexit, json, sys
atexit.register(lambda: print("IMPORTED " + json.dumps(sorted(
    {{name.split(".")[0] for name in sys.modules}} & set({list(HEAVY)!r}))), file=sys.stderr))
from desktop.cli import main
sys.exit(main(sys.argv[1:]))
"""


def onnxchat(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    """Exit status, stdout and the heavy packages imported by ``onnxchat *args``."""
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                            text=True, timeout=120, env=env, check=False)
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("IMPORTED "), result.stderr
    return result.returncode, result.stdout, json.loads(lines[-1].removeprefix("IMPORTED "))


@pytest.mark.parametrize("args", [
    ("--help",),
    ("--version",),
    ("history", "--help"),
    ("history", "list"),
    ("history", "search", "puffins"),
    ("models",),
    ("models", "--json"),
])
def test_quick_commands_do_not_load_the_engine_or_qt(args, tmp_path, default_model):
    env = {**os.environ, "ONNXCHAT_DATA_DIR": str(tmp_path / "data"),
           "ONNXCHAT_MODELS_DIR": str(default_model.parent)}
    code, out, imported = onnxchat(*args, env=env)
    assert code == 0, out
    assert imported == [], f"onnxchat {' '.join(args)} imported {imported}"
    if args == ("--help",):
        for command in ("chat", "models", "history", "bench", "soak", "export"):
            assert command in out
    if args == ("models", "--json"):
        assert [row["name"] for row in json.loads(out)] == [default_model.name]


def test_the_engine_loads_for_the_commands_that_use_it(default_model, tmp_path):
    code, out, imported = onnxchat("chat", "--model", str(default_model), "--prompt", "Hi",
                                   "--max-new-tokens", "2", "--temperature", "0",
                                   "--device", "cpu")
    assert code == 0 and out.strip()
    assert "numpy" in imported and "onnxruntime" in imported and "PySide6" not in imported


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_the_output_is_one_line_not_a_traceback(default_model, tmp_path):
    """The machine's errors are told, not dumped: ``onnxchat models > /dev/full`` says the
    disk is full in one line and exits 1."""
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "desktop", "--data-dir", str(tmp_path), "models"],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
            env={**os.environ, "ONNXCHAT_MODELS_DIR": str(default_model.parent)})
    assert result.returncode == 1
    assert result.stderr == "onnxchat: error: No space left on device\n"


def test_options_before_the_command_are_kept_and_empty_ones_refused(default_model, tmp_path):
    """``onnxchat --model M chat`` chats with M (argparse let the command's own unset option
    overwrite it, so the default model answered); an empty ``--data-dir`` or ``--model`` is
    refused in one line instead of meaning "the usual folder"."""
    env = {**os.environ, "ONNXCHAT_DATA_DIR": str(tmp_path / "data"),
           "ONNXCHAT_MODELS_DIR": str(default_model.parent)}
    missing = subprocess.run(
        [sys.executable, "-m", "desktop", "--model", "no-such-model", "chat", "--prompt", "Hi"],
        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert missing.returncode != 0 and missing.stdout == ""
    assert missing.stderr.startswith("onnxchat: error: no model named 'no-such-model'")
    for args in (["--data-dir", "", "models"], ["chat", "--model", " ", "--prompt", "Hi"]):
        code, out, _ = onnxchat(*args, env=env)
        assert code != 0 and out == ""
    untouched = tmp_path / "untouched"
    result = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", "", "models"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**env, "ONNXCHAT_DATA_DIR": str(untouched)})
    assert result.stderr == ("onnxchat: error: --data-dir is empty: give a folder, or leave "
                             "the option out\n")
    assert not untouched.exists()
