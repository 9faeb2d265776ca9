"""An export killed with SIGKILL (no chance to clean up) leaves nothing that looks like a
model, and the next export into the same folder clears the leftover and succeeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def test_sigkill_mid_export_leaves_no_valid_looking_folder(tmp_path: Path, tiny_gpt2_hf: Path):
    out = tmp_path / "models"
    out.mkdir()
    # The default model's export runs for minutes: killed as its first step (loading and
    # converting the weights into the partial folder) begins, whatever the machine's speed.
    process = subprocess.Popen(
        [sys.executable, "-m", "export", "default", "--name", "tiny", "--out", str(out),
         "--progress-json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    assert first["step"] == 1 and "done" not in first
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "the export ended before it was killed"
    leftovers = list(out.iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    assert not (out / "tiny").exists()

    env = dict(os.environ, ONNXCHAT_MODELS_DIR=str(out), ONNXCHAT_DATA_DIR=str(tmp_path / "d"))
    listed = subprocess.run([sys.executable, "-m", "desktop", "models"], env=env,
                            capture_output=True, text=True, check=True)
    assert str(out) not in listed.stdout  # the leftover is never listed as a model

    again = subprocess.run(
        [sys.executable, "-m", "export", str(tiny_gpt2_hf), "--quant", "fp32", "--name", "tiny",
         "--out", str(out)], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert [p.name for p in out.iterdir()] == ["tiny"]
