"""How long the window's UI thread goes without serving its event loop.

A 10 ms timer runs while the test lets the event loop work; between two ticks the UI thread
did nothing else but the work the test caused. The CPU time the thread used between ticks is
that work's length, which a machine busy with other processes does not inflate; the lateness
on the wall clock is also kept, with a looser bound, so a frozen window is caught either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer

#: The longest stretch of work the UI thread may do between two events.
WORK_BOUND_S = 0.100
#: The worst lateness on the clock, however busy the machine: a frozen window (minutes) is
#: caught, a machine whose other processes hold both cores for a moment is not blamed.
LATE_BOUND_S = 5.0
#: Ticks a measurement needs; on a machine busy with other work it runs longer to get them.
MIN_TICKS = 25


@dataclass
class Stalls:
    """The longest stretch of UI-thread work between two ticks (its own CPU time), the worst
    lateness on the clock, over ``ticks`` ticks."""

    work: float
    late: float
    ticks: int


def ui_thread_stalls(qtbot, milliseconds: int,
                     until: Callable[[], bool] = lambda: False) -> Stalls:
    """Run the event loop for ``milliseconds`` (or until ``until()``) with a 10 ms timer,
    and on until :data:`MIN_TICKS` ticks were seen (at most 30 s more)."""
    work: list[float] = []
    late: list[float] = []
    previous = [time.thread_time(), time.perf_counter()]

    def tick() -> None:
        cpu, now = time.thread_time(), time.perf_counter()
        work.append(cpu - previous[0])
        late.append(now - previous[1] - 0.010)
        previous[:] = [cpu, now]

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    timer.start(10)
    deadline = time.perf_counter() + milliseconds / 1000
    while ((time.perf_counter() < deadline and not until())
           or (len(work) < MIN_TICKS and time.perf_counter() < deadline + 30)):
        qtbot.wait(20)
    timer.stop()
    return Stalls(max(work, default=0.0), max(late, default=0.0), len(work))


def assert_responsive(stalls: Stalls, what: str = "") -> None:
    """The UI thread never works 100 ms at a stretch, and the window never freezes for
    seconds even on a machine busy with other work."""
    where = f" ({what})" if what else ""
    assert stalls.ticks >= 20, f"only {stalls.ticks} timer ticks were measured{where}"
    assert stalls.work < WORK_BOUND_S, \
        f"the UI thread worked {stalls.work * 1000:.0f} ms at a stretch{where}"
    assert stalls.late < LATE_BOUND_S, \
        f"the event loop stalled for {stalls.late * 1000:.0f} ms{where}"
