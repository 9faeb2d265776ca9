"""Writing a model folder atomically.

An export builds everything in ``<out>/.<name>.partial-XXXX/`` beside the target and renames
the finished folder into place as its last step, so a folder under its real name is always
complete. Dot folders are never listed as models. The exporting process holds a lock on a
file inside its partial folder; a later export removes partial folders whose lock is free
(their owner died, even by SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from export.errors import ExportError

PARTIAL_TAG = ".partial-"
LOCK_FILE = ".export.lock"
# Without POSIX locks (Windows), a partial folder this old is taken to be abandoned.
STALE_AFTER_S = 24 * 3600

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def _lock(handle: IO[str]) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _is_abandoned(partial: Path) -> bool:
    lock = partial / LOCK_FILE
    try:
        age = time.time() - partial.stat().st_mtime
    except OSError:
        return False
    if fcntl is None:
        return age > STALE_AFTER_S
    if not lock.exists():
        # an export creates its lock right after the folder: give it a moment
        return age > 60
    with lock.open("a") as handle:
        return _lock(handle)


def remove_stale_partials(out_dir: Path) -> list[Path]:
    """Delete the partial folders of exports that died; returns what was removed."""
    removed = []
    if not out_dir.is_dir():
        return removed
    for partial in out_dir.glob(f".*{PARTIAL_TAG}*"):
        if partial.is_dir() and _is_abandoned(partial):
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


@contextlib.contextmanager
def staging_dir(out_dir: Path, name: str) -> Iterator[Path]:
    """A locked partial folder beside the target, removed on any exit (errors, Ctrl-C)."""
    partial = Path(tempfile.mkdtemp(prefix=f".{name}{PARTIAL_TAG}", dir=out_dir))
    try:
        with (partial / LOCK_FILE).open("w") as handle:
            _lock(handle)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield partial
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def publish(model_dir: Path, target: Path, overwrite: bool) -> None:
    """Rename the finished ``model_dir`` to ``target``.

    With ``overwrite``, the old folder is first renamed aside (to a partial name, so a crash
    in between leaves nothing that looks like a model) and restored if the final rename fails.
    """
    if not (target.exists() or target.is_symlink()):
        os.rename(model_dir, target)
        return
    if not overwrite:
        raise target_exists(target)
    aside = target.with_name(f".{target.name}{PARTIAL_TAG}replaced-{os.getpid()}")
    os.rename(target, aside)
    try:
        os.rename(model_dir, target)
    except BaseException:
        os.rename(aside, target)
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink()


def target_exists(target: Path) -> ExportError:
    return ExportError(
        f"{target} already exists: pass --overwrite to replace it, or --name to pick "
        "another name."
    )
