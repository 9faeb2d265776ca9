"""What the running server tells the outside: one line per event on stdout.

For people, a line with the address when it starts and one line per finished request. For
the window (``--status-json``), one JSON object per line: ``listening`` (url, model, device
"cpu" or "cuda" and ``device_reason``), ``requests`` after every change of the live counts
(with ``last``, the request that just ended), ``stopped`` at the end. Called from the event
loop and the model thread alike.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict
from typing import Any, TextIO

from desktop.engine.chat import STOP_CANCELLED
from desktop.engine.runtime import DeviceInfo
from desktop.server.protocol import FINISH_REASONS
from desktop.server.worker import Counts, Job


class StatusReporter:
    """Writes the server's events to ``out``, as text for people or JSON lines."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self._out = out or sys.stdout
        self._lock = threading.Lock()

    def listening(self, url: str, model: str, device: DeviceInfo) -> None:
        self._emit({"event": "listening", "url": url, "model": model, "device": device.used,
                    "device_reason": device.reason},
                   f"OnnxChat serves {model} on {device.describe()} at {url} (OpenAI API); "
                   "Ctrl-C stops")

    def changed(self, counts: Counts, job: Job | None) -> None:
        """The worker's ``on_change``: the live counts, and the request that just ended."""
        event: dict[str, Any] = {"event": "requests", **asdict(counts)}
        line = None
        if job is not None:
            last = describe(job)
            event["last"] = last
            line = (f"{last['endpoint']} {last['id']}: {last['prompt_tokens']} + "
                    f"{last['completion_tokens']} tokens, {last['finish_reason']}, "
                    f"{last['seconds']:.2f} s")
        self._emit(event, line)

    def stopped(self) -> None:
        self._emit({"event": "stopped"}, "OnnxChat server stopped")

    def _emit(self, event: dict[str, Any], line: str | None) -> None:
        text = json.dumps(event) if self.as_json else line
        if text is None:
            return
        with self._lock:
            try:
                self._out.write(text + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):  # the reader has gone; keep serving
                pass


def describe(job: Job) -> dict[str, Any]:
    """One finished request, as the status line reports it."""
    stats = job.stats
    reason = stats.stop_reason
    finish = FINISH_REASONS.get(reason, "cancelled" if reason == STOP_CANCELLED else "error")
    return {"id": job.id, "endpoint": job.endpoint, "finish_reason": finish,
            "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.new_tokens,
            "seconds": round(stats.total_s, 3)}
