"""File hashing and JSON writing shared by the pipeline steps."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_table(folder: Path, exclude: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """``{relative posix path: {sha256, size}}`` for every file below ``folder``.

    The manifest records this so an app can tell a damaged or edited model folder from the
    one the export wrote.
    """
    table: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel in exclude:
            continue
        table[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return table


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
