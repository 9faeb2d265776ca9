"""The window's local server: ``onnxchat serve --status-json`` in a child process.

A child process rather than a thread: the server loads its own copy of the model, so serving
other programs never waits for the window's engine thread nor makes the window wait, and a
crash there cannot take the window down. The child reports on stdout, one JSON object per line
(see :mod:`desktop.server.status`); this object turns those into signals. It belongs to the
application, not to a window, so a rebuilt window (a language change) finds it running.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal, Slot

from desktop.server.launch import serve_command
from desktop.ui.child_process import child_process
from desktop.ui.i18n import arg

STOP_GRACE_MS = 10_000
OFF, STARTING, ON, STOPPING = "off", "starting", "on", "stopping"


class LocalServer(QObject):
    """Starts, watches and stops the server child process.

    Signals:
        stateChanged(str): "off", "starting", "on" or "stopping".
        countsChanged(dict): live request counts (waiting, running, served, cancelled,
            failed, refused).
        failed(str): one line saying why the server stopped or could not start.
    """

    stateChanged = Signal(str)
    countsChanged = Signal(dict)
    failed = Signal(str)

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._data_dir = data_dir
        self._process: QProcess | None = None
        self._errors: list[str] = []
        self._pending: tuple[Path, str, int, bool, str] | None = None
        # The KV cache the server was started with (``onnxchat serve --kv-cache``).
        self.kv_cache = "fp32"
        self.state = OFF
        # The model folder being served (set as soon as the server is asked to start).
        self.folder: Path | None = None
        # The base URL clients use, and the model served, once the server listens.
        self.url = ""
        self.model = ""
        self.counts: dict[str, int] = {}

    @staticmethod
    def arguments(folder: Path, device: str, port: int, history: bool,
                  kv_cache: str = "fp32") -> list[str]:
        """``onnxchat serve`` options for the window's model, device, KV cache and settings."""
        args = ["--model", str(folder), "--device", device, "--kv-cache", kv_cache,
                "--port", str(port), "--status-json"]
        return [*args, "--history"] if history else args

    def start(self, folder: Path, device: str, port: int, history: bool = False,
              kv_cache: str = "fp32") -> None:
        """Serve ``folder``; a running server is stopped first and restarted with it."""
        if self._process is not None:
            self._pending = (folder, device, port, history, kv_cache)
            self.stop()
            return
        command = serve_command(self.arguments(folder, device, port, history, kv_cache),
                                str(self._data_dir))
        self.kv_cache = kv_cache
        process = child_process(self, self._on_stdout_line, self._on_stderr_line,
                                self._on_finished, self._on_process_error)
        self._process, self._errors = process, []
        self.folder = folder
        self.url, self.model, self.counts = "", "", {}
        self._set_state(STARTING)
        process.start(command[0], command[1:])

    def stop(self) -> None:
        """Ask the server to stop (it cancels its requests); kill it if it does not."""
        process = self._process
        if process is None or self.state == STOPPING:
            return
        self._set_state(STOPPING)
        pid = process.processId()
        if pid and os.name == "posix":
            os.kill(pid, signal.SIGTERM)
        else:
            process.terminate()
        QTimer.singleShot(STOP_GRACE_MS, self._on_grace_over)

    def shutdown(self) -> None:
        """Stop and wait (the application is quitting): no child outlives the window."""
        self._pending = None
        process = self._process
        if process is None:
            return
        self.stop()
        if not process.waitForFinished(STOP_GRACE_MS):
            process.kill()
            process.waitForFinished(STOP_GRACE_MS)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    # --- the child process --------------------------------------------------------------

    def _on_stdout_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        if isinstance(event, dict):
            self._on_event(event)

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "listening":
            self.url, self.model = str(event.get("url", "")), str(event.get("model", ""))
            self._set_state(ON)
        elif kind == "requests":
            self.counts = {k: v for k, v in event.items() if isinstance(v, int)}
            self.countsChanged.emit(dict(self.counts))

    def _on_stderr_line(self, line: str) -> None:
        if line.strip():
            self._errors = [*self._errors, line][-20:]

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        stopping = self.state == STOPPING
        self._set_state(OFF)
        if not stopping and (code != 0 or status != QProcess.ExitStatus.NormalExit):
            self.failed.emit(self._error_line(code))
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.start(*pending)

    def _error_line(self, code: int) -> str:
        for line in reversed(self._errors):
            if line.startswith("onnxchat: error: "):
                return line.removeprefix("onnxchat: error: ")
        return self._errors[-1] if self._errors else arg(
            self.tr("the server ended with exit code %1"), code)

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            process, self._process = self._process, None
            if process is not None:
                process.deleteLater()
            self._set_state(OFF)
            self.failed.emit(arg(self.tr("the server could not start: %1"),
                                 serve_command([])[0]))

    @Slot()
    def _on_grace_over(self) -> None:
        if self._process is not None and self.state == STOPPING:
            self._process.kill()
