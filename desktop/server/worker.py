"""The model's own thread: one generation at a time, the rest waiting in a bounded queue.

The engine is not re-entrant, so exactly one thread drives it. Requests are planned (prompt
rendered, context checked) by the HTTP side and arrive here as ready :class:`ReplyStream`\\ s;
the thread runs them in order and hands each piece back to the event loop that waits for it.
A request whose client went away is cancelled through the engine's own flag, which the loop
checks before every token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from desktop.engine.chat import STOP_CANCELLED, ReplyStats, ReplyStream

log = logging.getLogger(__name__)

_PIECE, _END, _ERROR = "piece", "end", "error"


class QueueFull(Exception):
    """Every place in the queue is taken; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class WorkerClosed(Exception):
    """The server is shutting down and takes no more requests."""


@dataclass
class Job:
    """One request's generation, seen from both sides.

    The worker thread posts pieces, then an end or an error; the event loop reads them with
    :meth:`pieces`. :meth:`cancel` may be called from either side, any number of times.
    """

    id: str
    endpoint: str
    stream: ReplyStream
    loop: asyncio.AbstractEventLoop
    #: The request's input as chat messages (a completion's prompt as one user message).
    conversation: list[dict[str, str]] = field(default_factory=list)
    #: Called on the worker thread around the generation (chat history, when turned on).
    observer: JobObserver | None = None
    events: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)

    def cancel(self) -> None:
        self.stream.cancel()

    @property
    def stats(self) -> ReplyStats:
        return self.stream.stats

    async def pieces(self) -> AsyncIterator[str]:
        """The text as it is generated; raises what the generation raised."""
        while True:
            kind, value = await self.events.get()
            if kind == _PIECE:
                yield value
            elif kind == _END:
                return
            else:
                raise value

    def _post(self, kind: str, value: Any) -> None:
        # A closed event loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


class JobObserver:
    """Hooks the worker calls on its own thread; the chat-history recorder implements them."""

    def started(self, job: Job) -> None: ...

    def piece(self, job: Job, text: str) -> None: ...

    def ended(self, job: Job, error: BaseException | None) -> None: ...


@dataclass(frozen=True)
class Counts:
    """Live request counts, for the status line and the window."""

    waiting: int = 0
    running: int = 0
    served: int = 0
    cancelled: int = 0
    failed: int = 0
    refused: int = 0


class ModelWorker:
    """Runs jobs one at a time on a dedicated thread, with at most ``queue_size`` waiting.

    ``on_change(counts, job)`` is called (from any thread) whenever the counts change; ``job``
    is the one that just ended, else None.
    """

    def __init__(self, queue_size: int,
                 on_change: Callable[[Counts, Job | None], None] | None = None) -> None:
        self.queue_size = queue_size
        self._on_change = on_change
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._counts = Counts()
        self._current: Job | None = None
        self._waiting: list[Job] = []
        self._closed = False
        self._seconds_per_job = 1.0  # a running average, for Retry-After
        self._thread = threading.Thread(target=self._run, name="model", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; :class:`QueueFull` or :class:`WorkerClosed` if it cannot wait."""
        with self._lock:
            if self._closed:
                raise WorkerClosed()
            if len(self._waiting) >= self.queue_size:
                self._update(refused=self._counts.refused + 1)
                ahead = len(self._waiting) + 1
                raise QueueFull(max(1, min(60, math.ceil(ahead * self._seconds_per_job))))
            self._waiting.append(job)
            self._update(waiting=len(self._waiting))
            self._queue.put(job)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel the running and waiting jobs (each still ends, as cancelled), then end the
        thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)  # after every job already queued
            jobs = [*self._waiting, *([self._current] if self._current else [])]
        for job in jobs:
            job.cancel()
        self._thread.join(timeout)

    def _update(self, job: Job | None = None, **changes: int) -> None:
        """Change the counts (the lock is held) and report them."""
        self._counts = replace(self._counts, **changes)
        if self._on_change is not None:
            self._on_change(self._counts, job)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._waiting.remove(job)
                self._current = job
                self._update(waiting=len(self._waiting), running=1)
            started = time.perf_counter()
            error = self._generate(job)
            elapsed = time.perf_counter() - started
            with self._lock:
                self._current = None
                self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * elapsed
                c = self._counts
                if error is not None:
                    self._update(job, running=0, failed=c.failed + 1)
                elif job.stats.stop_reason == STOP_CANCELLED:
                    self._update(job, running=0, cancelled=c.cancelled + 1)
                else:
                    self._update(job, running=0, served=c.served + 1)

    def _generate(self, job: Job) -> BaseException | None:
        observer = job.observer
        error: BaseException | None = None
        try:
            if observer is not None:
                observer.started(job)
            for piece in job.stream:
                job._post(_PIECE, piece)
                if observer is not None:
                    observer.piece(job, piece)
        except Exception as exc:
            log.debug("generation failed", exc_info=True)
            error = exc
        if observer is not None:
            observer.ended(job, error)
        if error is None:
            job._post(_END, None)
        else:
            job._post(_ERROR, error)
        return error
