"""``onnxchat serve --history``: each request and its reply saved as a conversation.

Off by default: programs calling the server make many requests the user never sees. When on,
each request becomes one conversation titled "API: …", written through the same store API the
window uses (user messages committed before generation, the reply while it streams), on the
model thread, which owns its store connection. A store that fails (disk full, locked) costs the
request its history entry, never its answer; the problem is logged once per request.
"""

from __future__ import annotations

import logging

from desktop.engine.model import Model
from desktop.errors import UserError
from desktop.server.worker import Job, JobObserver
from desktop.store import ChatStore, ReplyStats, ReplyWriter, Repro

log = logging.getLogger(__name__)

TITLE_CHARS = 60


class HistoryRecorder(JobObserver):
    """Saves each job's conversation and reply in ``store`` (called on the model thread)."""

    def __init__(self, store: ChatStore, model: Model) -> None:
        self._store = store
        self._model = model
        self._writers: dict[str, ReplyWriter] = {}

    def started(self, job: Job) -> None:
        messages = job.conversation
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        rest = messages[1:] if system else messages
        stream, model = job.stream, self._model
        try:
            conversation = self._store.create_conversation(
                title(rest), model=model.name, system_prompt=system,
                sampling=stream.settings.to_dict())
            for message in rest:
                self._store.add_message(conversation.id, message["role"], message["content"])
            plan = stream.plan
            repro = Repro(model=model.name, manifest_sha256=model.manifest.sha256,
                          device=model.device.used, sampling=stream.settings.to_dict(),
                          seed=stream.seed, prompt_tokens=len(plan.prompt_ids),
                          context_length=plan.context_length,
                          dropped_messages=tuple(plan.dropped))
            self._writers[job.id] = self._store.begin_reply(conversation.id, repro)
        except UserError as exc:
            log.warning("request %s is not saved to the chat history: %s", job.id, exc)

    def piece(self, job: Job, text: str) -> None:
        writer = self._writers.get(job.id)
        if writer is None:
            return
        try:
            writer.append(text)
        except UserError as exc:
            log.warning("request %s: the chat history stops here: %s", job.id, exc)
            del self._writers[job.id]

    def ended(self, job: Job, error: BaseException | None) -> None:
        writer = self._writers.pop(job.id, None)
        if writer is None:
            return
        stats = job.stats
        try:
            if error is not None:
                writer.fail(str(error) if isinstance(error, UserError)
                            else f"{type(error).__name__}: {error}")
            elif stats.stop_reason == "cancelled":
                writer.cancel()
            else:
                writer.finish(ReplyStats(completion_tokens=stats.new_tokens,
                                         first_token_s=stats.time_to_first_token_s,
                                         total_s=stats.total_s), stats.stop_reason)
        except UserError as exc:
            log.warning("request %s: the end of its reply is not saved: %s", job.id, exc)


def title(messages: list[dict[str, str]]) -> str:
    """"API: " and the start of the first user message (or of the prompt)."""
    text = next((m["content"] for m in messages if m["role"] == "user"), "")
    first = " ".join(text.split())[:TITLE_CHARS] or "request"
    return f"API: {first}"
