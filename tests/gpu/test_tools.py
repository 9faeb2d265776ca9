"""The GPU check's own tools work where CI can run them: the profiler summary on the CPU, and
run.sh's refusal when it has nothing to install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_profile_step_sums_the_time_of_each_op(tiny_llama_fused_model: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(HERE / "profile_step.py"), str(tiny_llama_fused_model),
         "--device", "cpu", "--steps", "3", "--prompt-tokens", "8", "--threads", "1",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "profile_summary.json").read_text())
    assert summary["steps"] == 3 and summary["graph"] == "onnx/model.onnx"
    ops = {row["op"]: row for row in summary["per_op"]}
    assert ops["GroupQueryAttention"]["calls_per_step"] == 2  # one per layer
    assert ops["MatMulNBits"]["providers"] == ["CPUExecutionProvider"]
    assert abs(sum(row["share"] for row in summary["per_op"]) - 1) < 0.01
    assert (tmp_path / summary["trace"]).is_file()


def test_run_sh_without_a_wheel_says_what_it_needs(tmp_path: Path):
    result = subprocess.run(
        ["bash", str(HERE / "run.sh"), str(tmp_path / "out")],
        env={"PATH": "/usr/bin:/bin", "WHEEL_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"run.sh: no onnxruntime-gpu wheel: set ORT_WHEEL or put onnxruntime_gpu-*.whl in "
        f"{tmp_path}")
