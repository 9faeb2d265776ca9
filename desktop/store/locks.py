"""Locks between processes on plain files, released by the system when a process dies.

Two uses: the lock that lets one process at a time bring the database file into shape
(:func:`hold`), and the lease each open store holds while it may write replies
(:class:`WriterLease`), which tells a later process whether a reply left ``streaming`` still
has a living writer. A process killed with SIGKILL loses its locks at once, and a reused
process id cannot fake one, so no heartbeat or pid check is needed.

POSIX uses ``flock`` (whole-file, tied to the open file rather than the process, so two
stores in one process also exclude each other); Windows uses ``msvcrt.locking`` on the
first byte.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from desktop.errors import StoreError
from desktop.store.records import new_id

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


#: Suffix of a writer's lease file inside the writers folder.
LEASE_SUFFIX = ".lock"
_POLL_S = 0.01


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextlib.contextmanager
def hold(path: Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold the lock on ``path`` (created if missing) for the ``with`` block.

    Waits up to ``timeout_s`` for another process to let go, then raises
    :class:`StoreError` naming ``what`` was waited for.
    """
    try:
        fd = _open(path)
    except OSError as exc:
        raise _not_writable(what, path, exc) from exc
    try:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise StoreError(f"Cannot {what} ({path}): another OnnxChat process has been "
                                 f"opening it for over {timeout_s:.0f} s; close it and try "
                                 "again.")
            time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class WriterLease:
    """Proof that this store is alive: a locked file named after :attr:`writer_id`.

    Create it while holding the opening lock (:func:`hold`), so that :func:`sweep` never
    sees a lease file that exists but is not locked yet.
    """

    def __init__(self, folder: Path) -> None:
        self.writer_id = new_id()
        self._path = folder / f"{self.writer_id}{LEASE_SUFFIX}"
        try:
            folder.mkdir(exist_ok=True)
            self._fd: int | None = _open(self._path)
        except OSError as exc:
            raise _not_writable("open the chat history", folder, exc) from exc
        if not _try_lock(self._fd):  # a fresh random name: nobody else can hold it
            os.close(self._fd)
            raise StoreError(f"Cannot lock {self._path}; the file system does not support "
                             "locks, choose another folder with --data-dir.")

    def release(self) -> None:
        """Give the lease up (the store is closing); its file goes with it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if sys.platform == "win32":  # pragma: no cover - an open file cannot be removed there
            os.close(fd)
            with contextlib.suppress(OSError):
                self._path.unlink()
        else:
            with contextlib.suppress(OSError):
                self._path.unlink()
            os.close(fd)


def _not_writable(what: str, path: Path, exc: OSError) -> StoreError:
    return StoreError(f"Cannot {what} ({path}): the folder is not writable ({exc.strerror}); "
                      "fix its permissions or choose another folder with --data-dir or "
                      "ONNXCHAT_DATA_DIR.")


def writer_gone(folder: Path, writer_id: str) -> bool:
    """Whether the store that leased ``writer_id`` has closed or its process has died."""
    return _unlocked(folder / f"{writer_id}{LEASE_SUFFIX}")


def sweep(folder: Path) -> None:
    """Remove the lease files of writers that are gone (their process was killed).

    Call it while holding the opening lock: leases are only created under it, and a lease
    found unlocked can never be taken again (its name is random).
    """
    try:
        paths = list(folder.glob(f"*{LEASE_SUFFIX}"))
    except OSError:
        return
    for path in paths:
        if _unlocked(path):
            with contextlib.suppress(OSError):
                path.unlink()


def _unlocked(path: Path) -> bool:
    """Whether nobody holds the lock on ``path`` (a missing file counts as unlocked)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:  # unreadable: not known to be gone
        return False
    try:
        return _try_lock(fd)
    finally:
        os.close(fd)
