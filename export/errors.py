"""Errors of the export step that a user can act on.

Each carries one line: what is wrong and what to do. The command line prints that line
without a traceback (unless ``--debug``) and exits non-zero. Anything else is a bug.
"""

from __future__ import annotations

import errno
import os


class ExportError(Exception):
    """Bad input or a condition the user can fix (missing file, name taken, disk full)."""

    exit_code = 2


class FusedLayoutError(ExportError):
    """The fused graph cannot express this model (a config it refuses, a tensor it cannot
    place); ``reason`` is one clause, which the pipeline reports when it falls back to the
    Optimum layout."""

    def __init__(self, recipe: str, reason: str) -> None:
        super().__init__(f"The {recipe} recipe cannot rebuild this model: {reason}.")
        self.reason = reason


class ValidationFailedError(ExportError):
    """The quantized model drifted too far from the fp32 export; nothing was kept."""

    exit_code = 3


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk or an exhausted quota raises while writing, including
    those native code (torch, protobuf, onnxruntime) reports as a RuntimeError with the
    system's message."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    return any(os.strerror(code) in str(exc) for code in DISK_FULL_ERRNOS)


def first_line(exc: BaseException) -> str:
    """What a library's exception says in one line (its type when it says nothing), for the
    one-line errors the export prints."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
