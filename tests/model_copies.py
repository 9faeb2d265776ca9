"""Copies of an exported model folder changed the way an older or a different export
would have left them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

INT8_GRAPH = "onnx/model_int8kv.onnx"
INT8_SCALES = "onnx/model_int8kv_scales.npy"


def without_int8_graph(folder: Path, copy: Path, entry: dict | None = None) -> Path:
    """``folder`` copied to ``copy`` without its int8-cache graph: as exported before that
    graph existed, or, with ``entry`` (e.g. ``{"reason": ...}``), as an export that did not
    keep it."""
    shutil.copytree(folder, copy)
    (copy / INT8_GRAPH).unlink()
    (copy / INT8_SCALES).unlink()
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    del manifest["onnx"]["graphs"]["cpu-int8kv"]
    if entry is not None:
        manifest["onnx"]["graphs"]["cpu-int8kv"] = entry
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy


def without_int8_scales(folder: Path, copy: Path) -> Path:
    """``folder`` copied to ``copy`` as exported before the int8 cache's scales were kept
    beside its graph."""
    shutil.copytree(folder, copy)
    (copy / INT8_SCALES).unlink()
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    del manifest["onnx"]["graphs"]["cpu-int8kv"]["scales"]
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy
