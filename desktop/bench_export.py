"""``onnxchat bench --export-size 7b``: what exporting and loading a large model costs on this
machine — export wall time and peak memory, the size on disk, and the engine's load time and
resident memory after loading and after one decode step.

The model is a random-weight Llama of the named shape (``export/synthetic.py``: ``1b`` is
Llama 3.2 1B's, ``7b`` Llama 3 8B's), written as a Q4_0 GGUF one tensor at a time and then
exported with ``python -m export`` exactly as a user's file would be (``--force``: random
weights make no sense to the quality gate, whose figures are reported anyway). Each step runs
in its own child process, so each peak is that step's alone (``wait4``'s maximum resident set
size; Linux reads resident memory from ``/proc``). Everything is written under a temporary
folder (``--export-dir``, default the system's) and deleted afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from desktop.bench_shape import check_can_build
from desktop.errors import UserError

EXPORT_SIZES = ("1b", "7b", "tiny")
_LOAD_MARK = "onnxchat-bench-load:"


def _measured(args: list[str]) -> tuple[float, float | None, str]:
    """Run ``python ARGS`` to the end: (wall seconds, its own peak resident MB, its output);
    the peak is None where the platform has no ``wait4``. A failure raises
    :class:`UserError` with its last line."""
    started = time.perf_counter()
    peak = None
    with tempfile.TemporaryFile(mode="w+") as sink:
        process = subprocess.Popen([sys.executable, *args], stdout=sink,
                                   stderr=subprocess.STDOUT, text=True)
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            peak = usage.ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)
        else:
            process.wait()
        seconds = time.perf_counter() - started
        sink.seek(0)
        output = sink.read()
    if process.returncode != 0:
        lines = output.strip().splitlines()
        raise UserError(f"`python {' '.join(args[:3])} …` failed: "
                        f"{lines[-1] if lines else f'exit status {process.returncode}'}")
    return seconds, peak, output


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def run_export_bench(size: str, threads: int, work_dir: str | None) -> dict[str, Any]:
    """Build the ``size`` GGUF, export it, load it twice (prepacking on, then off); returns
    the figures and the commands that produced them."""
    check_can_build()
    if size not in EXPORT_SIZES:
        raise UserError(f"--export-size must be one of {', '.join(EXPORT_SIZES)}")
    root = Path(work_dir or tempfile.gettempdir()).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"onnxchat-export-bench-{size}-", dir=root))
    try:
        source = work / "source"
        make = ["-m", "export.synthetic", "--shape", size, "--gguf-only", "--out", str(source)]
        gguf_s, gguf_peak, _ = _measured(make)
        gguf = source / "model.gguf"
        export = ["-m", "export", str(gguf), "--out", str(work / "models"), "--name", size,
                  "--force"]
        export_s, export_peak, log = _measured(export)
        folder = work / "models" / size
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        onnx_mb = _size_mb(folder / "onnx" / "model.onnx") + (
            _size_mb(folder / "onnx" / "model.onnx_data")
            if (folder / "onnx" / "model.onnx_data").is_file() else 0.0)
        loads = {}
        for prepack in (True, False):
            args = ["-m", "desktop.bench_export", str(folder), str(threads),
                    "1" if prepack else "0"]
            _, peak, output = _measured(args)
            line = next(x for x in output.splitlines() if x.startswith(_LOAD_MARK))
            loads["prepacked" if prepack else "not_prepacked"] = {
                **json.loads(line[len(_LOAD_MARK):]), "peak_rss_mb": round(peak or 0, 1)}
        return {
            "shape": size, "threads": threads, "work_dir": str(work),
            "commands": {"gguf": f"python {' '.join(make)}",
                         "export": f"python {' '.join(export)}"},
            "gguf": {"seconds": round(gguf_s, 1), "peak_rss_mb": round(gguf_peak or 0, 1),
                     "size_mb": round(_size_mb(gguf), 1)},
            "export": {"seconds": round(export_s, 1),
                       "peak_rss_mb": round(export_peak or 0, 1),
                       "last_line": log.strip().splitlines()[-1].strip(),
                       "onnx_size_mb": round(onnx_mb, 1),
                       "folder_size_mb": round(_size_mb(folder), 1),
                       "gate_reference": manifest["validation"].get("reference")},
            "load": loads,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_table(report: dict[str, Any]) -> str:
    """The figures as a few lines for people."""
    g, e = report["gguf"], report["export"]
    lines = [
        f"{report['shape']}-shaped random Llama, Q4_0 GGUF of {g['size_mb'] / 1e3:.2f} GB "
        f"(written in {g['seconds']} s, peak {g['peak_rss_mb'] / 1e3:.2f} GB)",
        f"  {report['commands']['export']}",
        f"export: {e['seconds']} s, peak RSS {e['peak_rss_mb'] / 1e3:.2f} GB, ONNX "
        f"{e['onnx_size_mb'] / 1e3:.2f} GB (peak/size {e['peak_rss_mb'] / e['onnx_size_mb']:.2f})",
        f"  last line: {e['last_line']}",
    ]
    for name, load in report["load"].items():
        after, step = load["after_load"], load["after_step"]
        lines.append(
            f"engine load ({name.replace('_', ' ')}): {load['load_s']} s; RSS after load "
            f"{after['rss_mb'] / 1e3:.2f} GB ({after.get('anon_mb', 0) / 1e3:.2f} anon, "
            f"{after.get('file_mb', 0) / 1e3:.2f} mapped), after one decode step "
            f"{step['rss_mb'] / 1e3:.2f} GB (RSS/size {step['rss_mb'] / e['onnx_size_mb']:.2f}); "
            f"step {load['decode_step_s']} s")
    return "\n".join(lines)


def _proc_status() -> dict[str, float]:
    """Resident memory in MB: total, anonymous (the process's own copies) and file-backed
    (mapped weights), from /proc on Linux; the peak elsewhere."""
    path = Path("/proc/self/status")
    if not path.is_file():
        import resource

        return {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    text = path.read_text()
    found = {key: int(re.search(rf"{key}:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]
             for key in ("VmRSS", "RssAnon", "RssFile")}
    return {"rss_mb": round(found["VmRSS"], 1), "anon_mb": round(found["RssAnon"], 1),
            "file_mb": round(found["RssFile"], 1)}


def _load_child(folder: str, threads: int, prepack: bool) -> None:
    """In a fresh process: load the model as the app does (or its graph with ONNX Runtime's
    weight prepacking off), decode one step, print the figures."""
    from desktop.engine import load_model
    from desktop.engine.manifest import read_manifest
    from desktop.engine.runtime import SharedKVDecoder, create_session

    before = _proc_status()
    started = time.perf_counter()
    if prepack:
        decoder = load_model(folder, device="cpu", threads=threads).decoder
    else:
        manifest = read_manifest(folder)
        session, _ = create_session(manifest.folder / manifest.graphs["cpu"], "cpu", threads,
                                    prepack=False)
        decoder = SharedKVDecoder(session, "cpu", int(manifest.raw["onnx"]["max_length"]))
    load_s = time.perf_counter() - started
    loaded = _proc_status()
    started = time.perf_counter()
    logits = decoder.forward([1, 300, 301, 302])
    prompt_s = time.perf_counter() - started
    started = time.perf_counter()
    decoder.forward([int(logits.argmax())])
    step_s = time.perf_counter() - started
    print(_LOAD_MARK + json.dumps({
        "load_s": round(load_s, 2), "before": before, "after_load": loaded,
        "after_step": _proc_status(), "prompt_4_tokens_s": round(prompt_s, 2),
        "decode_step_s": round(step_s, 2)}), flush=True)


if __name__ == "__main__":
    _load_child(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1")
