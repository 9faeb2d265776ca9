"""Atomic publishing, stale partial folders, and the progress display a GUI parses."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from export.staging import LOCK_FILE, publish, remove_stale_partials, staging_dir

REPO = Path(__file__).resolve().parents[2]


def test_staging_dir_is_hidden_locked_and_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staging_dir(tmp_path, "model") as partial:
        assert partial.parent == tmp_path
        assert partial.name.startswith(".model.partial-")
        assert (partial / LOCK_FILE).is_file()
        # another export must see it as alive
        assert remove_stale_partials(tmp_path) == []
        (partial / "big-file").write_bytes(b"x" * 1000)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_stale_partials_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / ".a.partial-dead"
    dead.mkdir()
    (dead / LOCK_FILE).write_text("12345\n")  # its owner died: nobody holds the lock
    no_lock = tmp_path / ".b.partial-old"
    no_lock.mkdir()
    old = time.time() - 3600
    os.utime(no_lock, (old, old))
    fresh = tmp_path / ".c.partial-new"  # just created, lock not written yet
    fresh.mkdir()
    alive = tmp_path / ".d.partial-alive"
    alive.mkdir()
    model = tmp_path / "model"
    model.mkdir()
    with (alive / LOCK_FILE).open("w") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        removed = remove_stale_partials(tmp_path)
    assert sorted(p.name for p in removed) == [dead.name, no_lock.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, alive.name, "model"]


def test_publish_replaces_atomically_and_restores_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "v").write_text("1")
    new = tmp_path / ".model.partial-x"
    new.mkdir()
    (new / "v").write_text("2")

    real_rename = os.rename

    def failing_second_rename(src: str, dst: str) -> None:
        if Path(src) == new:
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_second_rename)
    with pytest.raises(OSError):
        publish(new, target, overwrite=True)
    assert (target / "v").read_text() == "1"
    monkeypatch.undo()

    publish(new, target, overwrite=True)
    assert (target / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_progress_json_subprocess(tmp_path: Path, tiny_llama_hf: Path) -> None:
    """A real export in a subprocess: stdout is only JSON lines, stderr the step lines."""
    out = tmp_path / "models"
    done = subprocess.run(
        [sys.executable, "-m", "export", str(tiny_llama_hf), "--quant", "int8",
         "--name", "tiny", "--out", str(out), "--progress-json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 5]
    fractions = [r["fraction"] for r in records]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert records[-1]["done"] is True
    assert all(isinstance(r["message"], str) and r["message"] for r in records)
    step_lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert [line[:5] for line in step_lines] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]
    manifest = json.loads((out / "tiny" / "manifest.json").read_text())
    assert manifest["quantization"]["quantized_matmuls"] == 15  # 2 × 7 linears + LM head
    assert manifest["validation"]["passed"] is True


def test_sigterm_cancels_and_cleans_up(tmp_path: Path, tiny_llama_hf: Path) -> None:
    """How a GUI cancels: terminate the process once a step has started; the partial
    folder is removed and the exit status says interrupted."""
    out = tmp_path / "models"
    process = subprocess.Popen(
        [sys.executable, "-m", "export", str(tiny_llama_hf), "--name", "tiny",
         "--out", str(out), "--progress-json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    assert first["step"] == 1
    assert any(p.name.startswith(".tiny.partial-") for p in out.iterdir())
    process.terminate()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "python -m export: error: Interrupted: nothing was kept."
    assert list(out.iterdir()) == []
