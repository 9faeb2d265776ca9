"""The context meter's planning, off the UI thread.

Planning renders the whole conversation and tokenizes it, several times while it searches for
the oldest turns to leave out; a chat holding a message of a few hundred thousand characters
costs a quarter of a second a time, and the meter plans again whenever the draft changes. So
the plans for the meter are made here, in a thread of their own (not the engine thread, which
is busy while a reply streams), and only the newest request is worked on: one that a newer
request has overtaken is skipped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from desktop.engine import ChatEngine, ContextPlan
from desktop.errors import UserError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class PlanRequest:
    """Plan ``messages`` (engine format, the draft last) with ``reserve`` tokens kept."""

    request_id: int
    engine: ChatEngine
    messages: list[dict[str, str]]
    reserve: int


@dataclass(frozen=True)
class PlanResult:
    """The plan for request ``request_id``, or the one line saying why there is none."""

    request_id: int
    plan: ContextPlan | None = None
    error: UserError | None = None


class ContextPlanner(QObject):
    """Makes context plans in the thread it is moved to.

    Signals:
        planned(PlanResult): the plan (or why not) for the newest request.
    """

    planned = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._newest = 0

    def overtake(self, request_id: int) -> None:
        """Note a new request (thread-safe), so older ones still queued are skipped."""
        with self._lock:
            self._newest = max(self._newest, request_id)

    @Slot(object)
    def plan(self, request: PlanRequest) -> None:
        with self._lock:
            if request.request_id < self._newest:
                return
        try:
            result = PlanResult(request.request_id,
                                plan=request.engine.plan(request.messages, request.reserve))
        except UserError as exc:
            # Without its traceback: frames kept alive by a stored exception make cycles
            # that only the garbage collector frees, on whichever thread it runs.
            result = PlanResult(request.request_id, error=exc.with_traceback(None))
        except Exception:  # a bug: the meter keeps its last figures
            log.exception("planning the context failed")
            return
        self.planned.emit(result)
