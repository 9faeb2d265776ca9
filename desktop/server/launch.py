"""Running ``onnxchat serve`` as a child process: the command line, and a handle that waits
for the server to listen and reads its JSON status lines (``onnxchat bench --server``; the
window drives the same command through a QProcess)."""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from desktop.errors import UserError


def serve_command(args: Sequence[str], data_dir: str | None = None) -> list[str]:
    """The argument list that runs ``onnxchat [--data-dir D] serve ARGS`` with this same
    installation: the frozen executable itself in a packaged app, else this Python."""
    prefix = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m",
                                                                       "desktop"]
    global_args = ["--data-dir", data_dir] if data_dir else []
    return [*prefix, *global_args, "serve", *args]


class ServerProcess:
    """``onnxchat serve --status-json ARGS`` in a child process.

    :meth:`start` returns once the server listens (``url``, ``model``, ``device``); every later
    status line
    lands in :attr:`events` as a dict. Use as a context manager to stop it at the end.
    """

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None,
                 data_dir: str | None = None) -> None:
        self.command = serve_command([*args, "--status-json"], data_dir)
        self.env = env
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.url = ""
        self.model = ""
        self.device = ""
        self.process: subprocess.Popen[str] | None = None
        #: The last lines the server wrote on stderr.
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=100)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 300.0) -> ServerProcess:
        env = dict(self.env if self.env is not None else os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._read_events, args=(self.process.stdout,),
                         daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.process.stderr,),
                         daemon=True).start()
        try:
            first = self.events.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise UserError(f"the server did not start within {timeout:g} s") from None
        if first.get("event") != "listening":
            self.process.wait(timeout=30)
            raise UserError("the server did not start: " + (self.error_line() or str(first)))
        self.url, self.model, self.device = first["url"], first["model"], first["device"]
        return self

    def error_line(self) -> str:
        """The last line the server wrote on stderr (its error, when it failed to start)."""
        return next((line for line in reversed(self.stderr_tail) if line.strip()), "")

    def stop(self, timeout: float = 30.0) -> int:
        """Ask the server to stop (SIGTERM), kill it if it does not; its exit status."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _read_events(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self.events.put(event)
        self.events.put({"event": "exited"})

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr_tail.append(line.rstrip("\n"))
