"""Child processes the window runs (the export step, the local server): one way to start them
so their output arrives line by line and every ending is heard."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, QObject, QProcess, QProcessEnvironment


class _Lines:
    """Splits one output channel into complete lines; a line cut by a read waits for its end,
    and what is left when the process ends is delivered then."""

    def __init__(self, read: Callable[[], QByteArray], deliver: Callable[[str], None]) -> None:
        self._read, self._deliver, self._rest = read, deliver, b""

    def __call__(self, final: bool = False) -> None:
        *lines, self._rest = (self._rest + bytes(self._read().data())).split(b"\n")
        if final and self._rest:
            lines.append(self._rest)
            self._rest = b""
        for line in lines:
            self._deliver(line.decode("utf-8", "replace").rstrip("\r"))


def child_process(owner: QObject, on_stdout_line: Callable[[str], None],
                  on_stderr_line: Callable[[str], None], on_finished: Callable[..., None],
                  on_error: Callable[..., None]) -> QProcess:
    """A not yet started QProcess owned by ``owner``, with unbuffered Python output (progress
    and status lines must not wait for a full pipe buffer). Each complete line of its output
    goes to ``on_stdout_line`` / ``on_stderr_line``; when it ends, the rest of its output is
    delivered before ``on_finished`` is called."""
    process = QProcess(owner)
    environment = QProcessEnvironment.systemEnvironment()
    environment.insert("PYTHONUNBUFFERED", "1")
    process.setProcessEnvironment(environment)
    stdout = _Lines(process.readAllStandardOutput, on_stdout_line)
    stderr = _Lines(process.readAllStandardError, on_stderr_line)
    process.readyReadStandardOutput.connect(stdout)
    process.readyReadStandardError.connect(stderr)
    # Connected first, so the last lines are in before on_finished runs.
    process.finished.connect(lambda *_: (stdout(final=True), stderr(final=True)))
    process.finished.connect(on_finished)
    process.errorOccurred.connect(on_error)
    return process
