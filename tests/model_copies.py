"""Copies of an exported model folder changed the way an older or a different export
would have left them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from export.onnx_files import INT8_CACHE_FILE, INT8_CACHE_ROTATION_FILE, INT8_CACHE_SCALES_FILE

INT8_GRAPH = f"onnx/{INT8_CACHE_FILE}"
INT8_SCALES = f"onnx/{INT8_CACHE_SCALES_FILE}"
INT8_ROTATION = f"onnx/{INT8_CACHE_ROTATION_FILE}"


def without_int8_graph(folder: Path, copy: Path, entry: dict | None = None) -> Path:
    """``folder`` copied to ``copy`` without its int8-cache graph: as exported before that
    graph existed, or, with ``entry`` (e.g. ``{"reason": ...}``), as an export that did not
    keep it."""

    def edit(graphs: dict) -> None:
        del graphs["cpu-int8kv"]
        if entry is not None:
            graphs["cpu-int8kv"] = entry

    return _copy_without(folder, copy, (INT8_GRAPH, INT8_SCALES, INT8_ROTATION), edit)


def without_int8_scales(folder: Path, copy: Path) -> Path:
    """``folder`` copied to ``copy`` as exported before the int8 cache's scales were kept
    beside its graph (and so before its values were rotated)."""

    def edit(graphs: dict) -> None:
        graphs["cpu-int8kv"].pop("scales")
        graphs["cpu-int8kv"].pop("value_rotation")

    return _copy_without(folder, copy, (INT8_SCALES, INT8_ROTATION), edit)


def _copy_without(folder: Path, copy: Path, files: tuple[str, ...],
                  edit: Callable[[dict], object]) -> Path:
    """``folder`` copied to ``copy`` less ``files``, its manifest's ``onnx.graphs`` changed
    by ``edit``."""
    shutil.copytree(folder, copy)
    for name in files:
        (copy / name).unlink()
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    edit(manifest["onnx"]["graphs"])
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy
