"""Child processes the window runs (the export step, the local server): one way to start them
so their output arrives line by line and every ending is heard."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment


def child_process(owner: QObject, on_stdout: Callable[[], None],
                  on_stderr: Callable[[], None], on_finished: Callable[..., None],
                  on_error: Callable[..., None]) -> QProcess:
    """A not yet started QProcess owned by ``owner``, with unbuffered Python output (progress
    and status lines must not wait for a full pipe buffer) and its four signals connected."""
    process = QProcess(owner)
    environment = QProcessEnvironment.systemEnvironment()
    environment.insert("PYTHONUNBUFFERED", "1")
    process.setProcessEnvironment(environment)
    process.readyReadStandardOutput.connect(on_stdout)
    process.readyReadStandardError.connect(on_stderr)
    process.finished.connect(on_finished)
    process.errorOccurred.connect(on_error)
    return process
