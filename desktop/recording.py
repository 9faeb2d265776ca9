"""Keeping a chat in the history while it happens: what the window and the terminal share.

Both front ends store a conversation the same way. The user's message is committed before
generation starts (:meth:`ChatStore.add_message`). :class:`RecordedReply` then creates the
reply with its reproducibility record (model, manifest hash, device, sampling settings, the
seed actually used, how the prompt fit the context), commits its text while it streams, and
ends it complete, cancelled, or failed with the reason. :func:`engine_messages` turns the
stored branch into what the model sees next, and :func:`title_from` names a new chat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from desktop.engine import ReplyStats as EngineStats
from desktop.engine import ReplyStream
from desktop.engine.chat import STOP_CANCELLED
from desktop.errors import UserError, failure_reason
from desktop.store import (
    CANCELLED,
    COMPLETE,
    INTERRUPTED,
    ChatStore,
    Message,
    ReplyStats,
    ReplyWriter,
    Repro,
)

log = logging.getLogger(__name__)

#: Replies in these states still carry text the model should see on the next turn.
_SHOWN_TO_MODEL = (COMPLETE, CANCELLED, INTERRUPTED)


def engine_messages(system_prompt: str, branch: Sequence[Message]) -> list[dict[str, str]]:
    """The branch on screen as the engine's message list (empty or failed replies left out)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for message in branch:
        if message.role == "assistant" and (message.state not in _SHOWN_TO_MODEL
                                            or not message.text):
            continue
        messages.append({"role": message.role, "content": message.text})
    return messages


def title_from(text: str, limit: int = 40) -> str:
    """A conversation title from its first message: the first line, shortened."""
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def repro_of(stream: ReplyStream) -> Repro:
    """What reproduces ``stream``'s reply: the same record regenerates the same text."""
    model, plan = stream.model, stream.plan
    return Repro(model=model.name, manifest_sha256=model.manifest.sha256,
                 device=model.device.used, sampling=stream.settings.to_dict(),
                 seed=stream.seed, prompt_tokens=len(plan.prompt_ids),
                 context_length=plan.context_length, dropped_messages=tuple(plan.dropped))


class RecordedReply:
    """An engine reply stream whose text goes to the store as it is shown.

    Creating it stores the empty reply (state ``streaming``, committed) with its
    reproducibility record. Iterate over it instead of the stream: each piece is handed out
    first and stored after, so what is stored is always a prefix of what was shown, and
    it lags by at most :data:`desktop.store.COMMIT_INTERVAL_S` of generation. When the
    stream ends the reply is stored as complete (with its figures and stop reason) or
    cancelled; when the stream or the store raises, as failed with :func:`failure_reason`
    (``failure_saved`` says whether the store took it), and the exception goes on. Use it on
    one thread (the store's writer uses that thread's connection).
    """

    def __init__(self, store: ChatStore, conversation_id: str, stream: ReplyStream, *,
                 replacing: str | None = None) -> None:
        self.stream = stream
        self.writer: ReplyWriter = store.begin_reply(conversation_id, repro_of(stream),
                                                     replacing=replacing)
        #: After a failure: whether the store took the failed state (see record_failure).
        self.failure_saved = True

    @property
    def message_id(self) -> str:
        return self.writer.message_id

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self.stream:
                yield piece
                self.writer.append(piece)
            stats = self.stream.stats
            if stats.stop_reason == STOP_CANCELLED:
                self.writer.cancel()
            else:
                self.writer.finish(stored_stats(stats), stats.stop_reason)
        except Exception as exc:  # the engine, or the store (a full disk), failed mid-reply
            self.failure_saved = record_failure(self.writer, failure_reason(exc))
            raise


def record_failure(writer: ReplyWriter, reason: str) -> bool:
    """End the reply as failed with ``reason``, keeping its text; whether the store took it.

    A store that cannot (its disk is still full) leaves the writer open, so the window can
    offer it again later; a reply never recorded is marked interrupted on the next start.
    """
    try:
        writer.fail(reason)
    except UserError as error:
        log.info("the failed reply %s could not be saved yet: %s", writer.message_id, error)
        return False
    except Exception:
        log.exception("the failed reply %s could not be saved", writer.message_id)
        return False
    return True


def stored_stats(stats: EngineStats) -> ReplyStats:
    """The figures kept with a reply, from the engine's statistics."""
    return ReplyStats(completion_tokens=stats.new_tokens,
                      first_token_s=stats.time_to_first_token_s, total_s=stats.total_s)
