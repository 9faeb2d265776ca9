"""Writing a reply while it is generated, so a crash loses at most a tenth of a second of it.

The reply row exists (state ``streaming``) before the first token; :meth:`ReplyWriter.append`
commits the text so far when :data:`COMMIT_INTERVAL_S` has passed since the last commit, so
the text a kill -9 loses was all generated within that interval after the last commit. Not
on every token: a commit of a growing text costs tens of microseconds (WAL without a sync,
and the search index is updated once the reply ends), well under 1% of decoding at ten
commits a second (``onnxchat bench --history`` measures it). The next open marks a reply
left ``streaming`` as ``interrupted`` once its writer is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from desktop.store.records import CANCELLED, COMPLETE, ERROR, ReplyStats, Repro

if TYPE_CHECKING:
    from desktop.store.chat_store import ChatStore

#: Seconds between commits of a streaming reply: the most a kill -9 can lose of it.
COMMIT_INTERVAL_S = 0.1


class ReplyWriter:
    """The assistant reply being generated; made by :meth:`ChatStore.begin_reply`.

    Use it from the thread that generates (it gets that thread's connection). End it with
    exactly one of :meth:`finish`, :meth:`cancel` or :meth:`fail`.
    """

    def __init__(self, store: ChatStore, message_id: str, conversation_id: str, repro: Repro,
                 *, commit_interval_s: float = COMMIT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        self._store = store
        self._repro = repro
        self._interval = commit_interval_s
        self._clock = clock
        self._pieces: list[str] = []
        self._last_commit = clock()
        self._ended = False

    @property
    def text(self) -> str:
        """The reply so far, committed or not."""
        return "".join(self._pieces)

    def append(self, piece: str) -> bool:
        """Add text; returns whether this call committed the reply so far.

        A commit that finds another process writing is skipped (``False``) rather than
        waited for. A failed commit raises :class:`StoreError`. Either way the text stays
        here and is written by the next commit, an interval later.
        """
        self._check_open()
        self._pieces.append(piece)
        now = self._clock()
        if now - self._last_commit < self._interval:
            return False
        self._last_commit = now  # also on failure, so a full disk is not retried every token
        return self._store._save_reply_text(self.message_id, self.text)

    def finish(self, stats: ReplyStats, stop_reason: str) -> None:
        """The reply is complete: store its full text, timing and why it stopped."""
        self._end(COMPLETE, stats, stop_reason, None)

    def cancel(self) -> None:
        """The user stopped the reply; the text so far is kept, marked cancelled."""
        self._end(CANCELLED, None, "cancelled", None)

    def fail(self, error: str) -> None:
        """Generation failed: keep the text so far, marked ``error``, with ``error`` (one line
        for the user, shown with the reply) as the reason."""
        self._end(ERROR, None, "error", error)

    def _end(self, state: str, stats: ReplyStats | None, stop_reason: str,
             error: str | None) -> None:
        self._check_open()
        repro = replace(self._repro, stop_reason=stop_reason)
        self._store._end_reply(self.message_id, self.conversation_id, self.text, state, stats,
                               repro, error)
        self._ended = True

    def _check_open(self) -> None:
        if self._ended:
            raise RuntimeError(f"reply {self.message_id} has already ended")
