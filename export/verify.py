"""Check a model folder against its manifest: every listed file present with its size and
sha256, nothing unlisted. ``python -m export.verify FOLDER`` prints the problems.

The app verifies folders itself; this is the export side's own check, used by its tests and
by people who copy model folders between machines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from export.files import sha256_file
from export.manifest import MANIFEST_FILE, SCHEMA_VERSION


def verify_folder(folder: Path) -> list[str]:
    """One line per problem; an empty list means the folder is what the export wrote."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        return [f"{folder} has no {MANIFEST_FILE}"]
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{manifest_path} is not valid JSON: {exc}"]
    if manifest.get("schema_version") != SCHEMA_VERSION:
        return [f"{manifest_path}: unknown schema_version {manifest.get('schema_version')!r}"]
    problems = []
    listed = manifest.get("files") or {}
    for rel, info in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"missing file: {rel}")
        elif path.stat().st_size != info.get("size"):
            problems.append(f"wrong size: {rel} ({path.stat().st_size} bytes, manifest says "
                            f"{info.get('size')})")
        elif sha256_file(path) != info.get("sha256"):
            problems.append(f"wrong sha256: {rel}")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST_FILE and rel not in listed:
            problems.append(f"unlisted file: {rel}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m export.verify MODEL_FOLDER", file=sys.stderr)
        return 2
    problems = verify_folder(Path(args[0]))
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{args[0]}: all files match the manifest", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
