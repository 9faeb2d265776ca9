"""The engine thread: model loading and reply generation, off the UI thread.

One :class:`EngineWorker` lives in one long-lived ``QThread`` for the whole session. Loading and
generating run there one after the other, so the engine is only ever driven by that thread and
a model switch can never swap the engine under a reply in progress. The UI asks for work with
queued signals and hears back the same way; the only direct call across threads is
:meth:`EngineWorker.cancel`, because the worker's event loop is busy while a reply streams and a
queued "stop" would arrive only after the reply ended.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from desktop.engine import ChatEngine, SamplingSettings, load_model
from desktop.engine.chat import STOP_CANCELLED, ReplyStream
from desktop.engine.manifest import read_manifest
from desktop.errors import UserError, failure_reason
from desktop.recording import RecordedReply
from desktop.store import ChatStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadRequest:
    """Open ``folder`` on ``device`` ("auto", "cuda" or "cpu"), with the int8 KV cache when
    ``kv_cache`` is "int8", the folder has that graph and ``device`` is not "cuda" (else the
    fp32 cache; the window says why: ``MainWindow._on_model_loaded``)."""

    request_id: int
    folder: Path
    device: str
    kv_cache: str = "fp32"


@dataclass(frozen=True)
class ReplyJob:
    """Answer the last message of ``messages`` (engine format) in ``conversation_id``.

    ``replacing`` is the id of an earlier reply this one regenerates (kept in the store as a
    sibling branch).
    """

    job_id: int
    conversation_id: str
    messages: list[dict[str, str]]
    settings: SamplingSettings
    replacing: str | None = None


@dataclass(frozen=True)
class ReplyStart:
    """What the UI needs when a reply begins: where it is stored and how the prompt fit."""

    job_id: int
    conversation_id: str
    message_id: str
    prompt_tokens: int
    reserve: int
    context_length: int
    dropped: tuple[int, ...] = field(default_factory=tuple)


class EngineWorker(QObject):
    """Loads models and generates replies in its own thread.

    Signals:
        loaded(LoadRequest, ChatEngine): the model is ready; the worker uses it from now on.
        loadFailed(LoadRequest, str): one line saying why; the previous model stays in use.
        replyStarted(ReplyStart): the reply row exists in the store.
        piece(int, str): job id and the next piece of text.
        finished(int, ReplyStats): the reply ended normally (engine statistics).
        failed(int, str, object): the reply could not be made: one line for the user, and the
            reply's :class:`ReplyWriter` when the store could not record the failure either
            (a full disk), so that it can be recorded later; else ``None``.
        cancelled(int): the reply was stopped; the text so far is saved.

    Every :class:`ReplyJob` ends with exactly one of ``finished``, ``failed`` or ``cancelled``.
    """

    loaded = Signal(object, object)
    loadFailed = Signal(object, str)
    replyStarted = Signal(object)
    piece = Signal(int, str)
    finished = Signal(int, object)
    failed = Signal(int, str, object)
    cancelled = Signal(int)

    def __init__(self, store: ChatStore, engine: ChatEngine | None = None) -> None:
        super().__init__()
        self._store = store
        self._engine = engine
        self._lock = threading.Lock()
        self._stream: ReplyStream | None = None
        self._stream_job: int | None = None
        self._cancelled: set[int] = set()

    # --- called directly from the UI thread -----------------------------------------------

    def cancel(self, job_id: int) -> None:
        """Stop job ``job_id`` after the current token, or before it starts. Thread-safe."""
        with self._lock:
            self._cancelled.add(job_id)
            if self._stream is not None and self._stream_job == job_id:
                self._stream.cancel()

    # --- slots run in the worker thread ---------------------------------------------------

    @Slot(object)
    def load(self, request: LoadRequest) -> None:
        try:
            manifest = read_manifest(request.folder)
            kv_cache = request.kv_cache
            if kv_cache == "int8" and (request.device == "cuda"
                                       or manifest.int8_cache[0] is None):
                kv_cache = "fp32"
            model = load_model(manifest, device=request.device, kv_cache=kv_cache)
        except UserError as exc:
            self.loadFailed.emit(request, str(exc))
            return
        except Exception as exc:  # a bug or an unexpected runtime error: keep the app alive
            log.exception("loading %s failed", request.folder)
            self.loadFailed.emit(request, f"{request.folder} could not be loaded: {exc}")
            return
        self._engine = ChatEngine(model)
        self.loaded.emit(request, self._engine)

    @Slot(object)
    def generate(self, job: ReplyJob) -> None:
        try:
            self._generate(job)
        except Exception as exc:  # before the reply exists: nothing to record in the store
            self.failed.emit(job.job_id, _reason(exc), None)
        finally:
            with self._lock:
                self._stream = None
                self._stream_job = None
                self._cancelled.discard(job.job_id)

    def _generate(self, job: ReplyJob) -> None:
        engine = self._engine
        if engine is None:
            raise UserError("no model is loaded; choose one in the model list")
        stream = engine.reply(job.messages, job.settings)
        with self._lock:
            if job.job_id in self._cancelled:
                self.cancelled.emit(job.job_id)
                return
            self._stream, self._stream_job = stream, job.job_id
        recorded = RecordedReply(self._store, job.conversation_id, stream,
                                 replacing=job.replacing)
        plan = stream.plan
        self.replyStarted.emit(ReplyStart(job.job_id, job.conversation_id, recorded.message_id,
                                          len(plan.prompt_ids), plan.reserve,
                                          plan.context_length, tuple(plan.dropped)))
        try:
            for text in recorded:  # stores the reply as it streams, and how it ended
                self.piece.emit(job.job_id, text)
        except Exception as exc:  # the engine or the store (a full disk) failed mid-reply
            self.failed.emit(job.job_id, _reason(exc),
                             None if recorded.failure_saved else recorded.writer)
            return
        stats = stream.stats
        if stats.stop_reason == STOP_CANCELLED:
            self.cancelled.emit(job.job_id)
        else:
            self.finished.emit(job.job_id, stats)


def _reason(exc: Exception) -> str:
    """One line for the user. A :class:`UserError` is the environment (shown, not logged);
    anything else is a bug, logged with its traceback."""
    if not isinstance(exc, UserError):
        log.error("generation failed", exc_info=exc)
    return failure_reason(exc)
