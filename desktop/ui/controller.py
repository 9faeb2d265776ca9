"""The window's link to the engine and the store: one object that outlives any window.

The controller owns the engine thread (:mod:`desktop.ui.worker`) and the chat store, turns
user actions (send, regenerate, edit and resend, stop, switch model) into worker jobs and
store writes, and coalesces the token stream into at most one update every
:data:`UPDATE_INTERVAL_MS`, so a fast model cannot flood the event loop with repaints. Keeping
this out of the window lets the window be rebuilt (a language switch) while a reply streams.

A reply that fails is stored as failed with its reason. When the store cannot take even that
(the disk is full), the controller keeps the failure, shows it in :meth:`messages` as if
stored, and records it as soon as it can: every :data:`RETRY_MS`, before the next reply, and
at shutdown.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from desktop.engine import ChatEngine, ContextPlan
from desktop.engine import ReplyStats as EngineStats
from desktop.errors import UserError
from desktop.recording import engine_messages, record_failure, title_from
from desktop.store import ERROR, ChatStore, Conversation, Message, ReplyWriter
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.planner import ContextPlanner, PlanRequest, PlanResult
from desktop.ui.worker import EngineWorker, LoadRequest, ReplyJob, ReplyStart

log = logging.getLogger(__name__)

UPDATE_INTERVAL_MS = 50
# How often a failure the store could not take is offered to it again.
RETRY_MS = 2000


@dataclass(frozen=True)
class ReplyEnd:
    """How a reply ended: ``outcome`` is "finished", "failed" or "cancelled"."""

    conversation_id: str
    message_id: str | None
    outcome: str
    text: str
    stats: EngineStats | None = None
    error: str | None = None


class ChatController(QObject):
    """Drives the engine worker and the store for the window.

    Signals:
        modelLoadStarted(str): the name of the model being loaded.
        modelLoaded(ChatEngine): the new model is in use.
        modelLoadFailed(str): one line; the previous model (if any) stays in use.
        generatingChanged(bool): a reply started or ended.
        replyStarted(ReplyStart): the reply exists in the store (regenerated/edited branch
            included); the view should show it.
        replyProgress(str, str, str): conversation id, message id and the reply so far;
            emitted at most every :data:`UPDATE_INTERVAL_MS`.
        replyEnded(ReplyEnd): exactly once per reply that was started with :meth:`send`,
            :meth:`regenerate` or :meth:`edit_and_resend`.
        conversationsChanged(): a conversation was created or retitled.
        planReady(PlanResult): the answer to the newest :meth:`request_plan`.
    """

    modelLoadStarted = Signal(str)
    modelLoaded = Signal(object)
    modelLoadFailed = Signal(str)
    generatingChanged = Signal(bool)
    replyStarted = Signal(object)
    replyProgress = Signal(str, str, str)
    replyEnded = Signal(object)
    conversationsChanged = Signal()
    planReady = Signal(object)

    # Requests to the worker and planner threads (queued connections).
    _loadRequested = Signal(object)
    _replyRequested = Signal(object)
    _planRequested = Signal(object)

    def __init__(self, store: ChatStore, engine: ChatEngine | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.engine = engine
        self.model_folder: Path | None = engine.model.manifest.folder if engine else None
        self.loading: LoadRequest | None = None
        self._ids = itertools.count(1)
        self._job: ReplyJob | None = None
        self._reply_id: str | None = None
        self._text: list[str] = []
        self._dirty = False
        # Failed replies the store could not record yet, by message id, with the reason.
        self._unrecorded: dict[str, tuple[ReplyWriter, str]] = {}
        # Figures of the last reply that finished (for the status bar of a new window).
        self.last_stats: EngineStats | None = None

        self._thread = QThread()
        self._thread.setObjectName("engine")
        self._worker = EngineWorker(store, engine)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._loadRequested.connect(self._worker.load)
        self._replyRequested.connect(self._worker.generate)
        self._worker.loaded.connect(self._on_loaded)
        self._worker.loadFailed.connect(self._on_load_failed)
        self._worker.replyStarted.connect(self._on_reply_started)
        self._worker.piece.connect(self._on_piece)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._plan_thread = QThread()
        self._plan_thread.setObjectName("planner")
        self._planner = ContextPlanner()
        self._planner.moveToThread(self._plan_thread)
        self._plan_thread.finished.connect(self._planner.deleteLater)
        self._planRequested.connect(self._planner.plan)
        self._planner.planned.connect(self._on_planned)
        self._newest_plan = 0
        self._newest_request: PlanRequest | None = None
        # The newest request the planner answered, and its answer.
        self._answered: tuple[PlanRequest, PlanResult] | None = None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(UPDATE_INTERVAL_MS)
        self._flush_timer.timeout.connect(self._on_flush_due)
        self._retry_timer = QTimer(self)
        self._retry_timer.setInterval(RETRY_MS)
        self._retry_timer.timeout.connect(self._on_retry_due)
        self._thread.start()
        self._plan_thread.start()

    # --- state --------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._job is not None

    @property
    def generating_conversation(self) -> str | None:
        return self._job.conversation_id if self._job else None

    @property
    def reply_id(self) -> str | None:
        """The store id of the reply being generated (once the worker created it)."""
        return self._reply_id

    @property
    def reply_text(self) -> str:
        return "".join(self._text)

    def messages(self, conversation_id: str) -> list[Message]:
        """The branch on screen as stored, with failed replies the store could not record
        yet shown as failed (not as still being written)."""
        branch = self.store.messages(conversation_id)
        if not self._unrecorded:
            return branch
        shown = []
        for message in branch:
            pending = self._unrecorded.get(message.id)
            if pending is not None:
                writer, reason = pending
                message = replace(message, text=writer.text, state=ERROR, error=reason)
            shown.append(message)
        return shown

    def model_defaults(self) -> dict:
        return dict(self.engine.model.manifest.sampling_defaults) if self.engine else {}

    def chat_settings(self, conversation: Conversation | None) -> ChatSettings:
        if conversation is None:
            return ChatSettings()
        return ChatSettings(conversation.system_prompt, dict(conversation.sampling))

    # --- models -------------------------------------------------------------------------

    def load_model(self, folder: Path, device: str, kv_cache: str = "fp32") -> None:
        """Load ``folder`` in the engine thread; the current model serves until it is ready.
        ``kv_cache`` "int8" asks for the int8 KV cache (:class:`LoadRequest`)."""
        request = LoadRequest(next(self._ids), Path(folder), device, kv_cache)
        self.loading = request
        self.modelLoadStarted.emit(Path(folder).name)
        self._loadRequested.emit(request)

    @Slot(object, object)
    def _on_loaded(self, request: LoadRequest, engine: ChatEngine) -> None:
        self.engine = engine
        self.model_folder = request.folder
        if self.loading is request:
            self.loading = None
        self.modelLoaded.emit(engine)

    @Slot(object, str)
    def _on_load_failed(self, request: LoadRequest, message: str) -> None:
        if self.loading is request:
            self.loading = None
        self.modelLoadFailed.emit(message)

    # --- replies ------------------------------------------------------------------------

    def send(self, conversation_id: str | None, text: str,
             draft: ChatSettings | None = None) -> str:
        """Store the user's message (creating the conversation, titled from it, if needed)
        and start the reply; returns the conversation id."""
        self._check_idle()
        # Refuse a message that can never fit before anything is stored (a 1 MB paste, say):
        # the ContextOverflowError says what fits, and the draft stays in the input box.
        existing = self.store.get_conversation(conversation_id) if conversation_id else None
        self.plan(existing, self.store.messages(conversation_id) if conversation_id else [],
                  text, self.chat_settings(existing) if existing else draft or ChatSettings())
        if conversation_id is None:
            draft = draft or ChatSettings()
            conversation = self.store.create_conversation(
                title_from(text), model=self.engine.model.name if self.engine else None,
                system_prompt=draft.system_prompt, sampling=dict(draft.overrides))
            conversation_id = conversation.id
            self.conversationsChanged.emit()
        self.store.add_message(conversation_id, "user", text)
        self._start(conversation_id, self.store.messages(conversation_id), None)
        return conversation_id

    def regenerate(self, reply_id: str) -> None:
        """Answer again the message ``reply_id`` answered; the old reply stays as a branch."""
        self._check_idle()
        reply = self.store.get_message(reply_id)
        branch = self.store.messages(reply.conversation_id)
        index = next(i for i, m in enumerate(branch) if m.id == reply_id)
        self._start(reply.conversation_id, branch[:index], reply_id)

    def edit_and_resend(self, message_id: str, text: str) -> None:
        """Replace a user message with ``text`` on a new branch and answer it."""
        self._check_idle()
        edited = self.store.edit_message(message_id, text)
        self._start(edited.conversation_id, self.store.messages(edited.conversation_id), None)

    def stop(self) -> None:
        """Stop the reply in progress after the current token (a direct, thread-safe call)."""
        if self._job is not None:
            self._worker.cancel(self._job.job_id)

    def plan(self, conversation: Conversation | None, branch: Sequence[Message],
             draft_text: str, settings: ChatSettings) -> ContextPlan | None:
        """How the next prompt would fit; ``None`` without a model. Before sending, in the
        calling thread (see :meth:`request_plan` for the context meter), unless the planner
        has just answered for the same prompt, as it has when the draft rested a moment.

        Raises :class:`ContextOverflowError` when it cannot fit at all, and
        :class:`SettingsError` for a sampling setting out of its range.
        """
        if self.engine is None:
            return None
        messages, reserve = self._prompt(branch, draft_text, settings)
        if self._answered is not None:
            asked, answer = self._answered
            if asked.engine is self.engine and asked.reserve == reserve \
                    and asked.messages == messages:
                if answer.error is not None:
                    raise copy.copy(answer.error)  # a fresh one: the stored one stays bare
                return answer.plan
        return self.engine.plan(messages, reserve)

    def request_plan(self, branch: Sequence[Message], draft_text: str,
                     settings: ChatSettings) -> bool:
        """Like :meth:`plan`, but made in the planner thread and answered by
        :attr:`planReady` (only the newest request is); ``False`` without a model.

        A setting out of range is answered at once, without a trip to the thread.
        """
        if self.engine is None:
            return False
        self._newest_plan += 1
        try:
            messages, reserve = self._prompt(branch, draft_text, settings)
        except UserError as exc:
            self.planReady.emit(PlanResult(self._newest_plan, error=exc.with_traceback(None)))
            return True
        self._planner.overtake(self._newest_plan)
        self._newest_request = PlanRequest(self._newest_plan, self.engine, messages, reserve)
        self._planRequested.emit(self._newest_request)
        return True

    def _prompt(self, branch: Sequence[Message], draft_text: str,
                settings: ChatSettings) -> tuple[list[dict[str, str]], int]:
        """The engine's messages with the draft last, and the tokens kept for the reply."""
        messages = engine_messages(settings.system_prompt, branch)
        messages.append({"role": "user", "content": draft_text})
        # Settings stored by an older version or imported are checked before anything else.
        sampling = settings.sampling(self.model_defaults()).validated()
        return messages, sampling.max_new_tokens

    @Slot(object)
    def _on_planned(self, result: PlanResult) -> None:
        if result.request_id == self._newest_plan and self._newest_request is not None:
            self._answered = (self._newest_request, result)
            self.planReady.emit(result)

    def shutdown(self) -> None:
        """Stop any reply (its text so far is saved by the worker) and end the engine thread.

        Signals the worker sent meanwhile are ignored: the store may be closed next.
        """
        self.stop()
        self._thread.quit()
        self._plan_thread.quit()
        self._thread.wait()
        self._plan_thread.wait()
        self._newest_plan += 1  # a plan answered meanwhile is for a window that is gone
        self._flush_timer.stop()
        self._job = None
        self.loading = None
        self._record_failures()
        self._retry_timer.stop()

    def _check_idle(self) -> None:
        if self._job is not None:
            raise RuntimeError("a reply is already being generated")

    def _start(self, conversation_id: str, branch: Sequence[Message],
               replacing: str | None) -> None:
        conversation = self.store.get_conversation(conversation_id)
        settings = self.chat_settings(conversation)
        self._record_failures()
        job = ReplyJob(next(self._ids), conversation_id,
                       engine_messages(settings.system_prompt, branch),
                       settings.sampling(self.model_defaults()), replacing)
        self._job, self._reply_id, self._text = job, None, []
        self.generatingChanged.emit(True)
        self._replyRequested.emit(job)

    def _is_current(self, job_id: int) -> bool:
        return self._job is not None and self._job.job_id == job_id

    @Slot(object)
    def _on_reply_started(self, start: ReplyStart) -> None:
        if self._is_current(start.job_id):
            self._reply_id = start.message_id
            self.replyStarted.emit(start)

    @Slot(int, str)
    def _on_piece(self, job_id: int, piece: str) -> None:
        if not self._is_current(job_id):
            return
        self._text.append(piece)
        self._dirty = True
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    @Slot()
    def _on_flush_due(self) -> None:
        if self._dirty and self._job is not None and self._reply_id is not None:
            self._dirty = False
            self.replyProgress.emit(self._job.conversation_id, self._reply_id, self.reply_text)

    @Slot(int, object)
    def _on_finished(self, job_id: int, stats: EngineStats) -> None:
        self._end(job_id, "finished", stats=stats)

    @Slot(int, str, object)
    def _on_failed(self, job_id: int, message: str, unrecorded: ReplyWriter | None) -> None:
        if unrecorded is not None:
            self._unrecorded[unrecorded.message_id] = (unrecorded, message)
            self._retry_timer.start()
        self._end(job_id, "failed", error=message)

    @Slot()
    def _on_retry_due(self) -> None:
        if self._job is None:  # not while the worker writes the next reply
            self._record_failures()

    def _record_failures(self) -> None:
        """Offer the store the failures it could not take; stop retrying once it has all."""
        for message_id, (writer, reason) in list(self._unrecorded.items()):
            if record_failure(writer, reason):
                del self._unrecorded[message_id]
        if not self._unrecorded:
            self._retry_timer.stop()

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        self._end(job_id, "cancelled")

    def _end(self, job_id: int, outcome: str, stats: EngineStats | None = None,
             error: str | None = None) -> None:
        if not self._is_current(job_id):
            return
        self._flush_timer.stop()
        self._on_flush_due()
        job = self._job
        assert job is not None
        end = ReplyEnd(job.conversation_id, self._reply_id, outcome, self.reply_text, stats, error)
        if stats is not None:
            self.last_stats = stats
        self._job, self._reply_id, self._text, self._dirty = None, None, [], False
        self.generatingChanged.emit(False)
        self.replyEnded.emit(end)
