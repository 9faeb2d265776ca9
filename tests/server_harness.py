"""Talking to a real ``onnxchat serve`` child process from tests: raw HTTP, its status lines,
its memory. (The server itself is started with :class:`desktop.server.launch.ServerProcess`.)"""

from __future__ import annotations

import http.client
import json
import queue
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from desktop.server.launch import ServerProcess


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, method: str = "GET", body: bytes | dict | None = None,
            headers: dict[str, str] | None = None, timeout: float = 300) -> Reply:
    """One HTTP request on a fresh connection; the whole reply."""
    parts = urlsplit(url)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, parts.path, body=data,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     response.read())
    finally:
        connection.close()


def sse_events(raw: bytes) -> list[Any]:
    """The ``data:`` payloads of a server-sent event stream (JSON decoded, except [DONE])."""
    events = []
    for line in raw.decode("utf-8").splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def wait_event(server: ServerProcess, wanted, timeout: float = 300) -> dict[str, Any]:
    """The next status line for which ``wanted(event)`` is true (earlier ones are dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the server did not report the expected event in time")
        try:
            event = server.events.get(timeout=left)
        except queue.Empty:
            continue
        if wanted(event):
            return event


def drain(server: ServerProcess) -> list[dict[str, Any]]:
    """Status lines reported so far and not read yet."""
    events = []
    while True:
        try:
            events.append(server.events.get_nowait())
        except queue.Empty:
            return events


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")
