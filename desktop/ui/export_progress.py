"""Following an export from its JSON progress lines (``python -m export --progress-json``):
the stage it is in, how far along it is, and an estimate of the time left.

The export states where each stage starts and ends as fractions of the whole (its stage
weights); the time it took to reach a stage's start, divided by that fraction, estimates the
whole export. While a stage runs past its share, the export cannot be further along than the
stage's end, so the estimate grows instead of counting down to zero. Times are the caller's
clock in seconds (``now``), so the estimate is the same for the same lines at the same times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The export's stages, in order (``stage`` in its progress lines).
STAGES = ("load", "onnx", "quantize", "validate", "write")


@dataclass
class _Anchor:
    stage: str | None
    fraction: float
    stage_end: float
    at: float


class ExportProgress:
    """The state of one export, fed one decoded progress line at a time."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.step = 0
        self.steps = len(STAGES)
        self.stage: str | None = None
        self.message = ""
        self.done = False
        self.error: str | None = None
        self._anchor: _Anchor | None = None
        self._shown = 0.0

    def feed(self, record: dict[str, Any], now: float) -> None:
        """Take one progress line (a JSON object) that arrived at ``now``."""
        if "error" in record:
            self.error = str(record["error"])
            return
        self.step = _int(record.get("step"), self.step)
        self.steps = _int(record.get("steps"), self.steps)
        self.message = str(record.get("message", ""))
        stage = record.get("stage")
        self.stage = stage if isinstance(stage, str) else self.stage
        if record.get("done"):
            self.done = True
            self._shown = 1.0
            return
        fraction = _fraction(record.get("fraction"))
        stage_end = _fraction(record.get("stage_end"))
        if fraction is None:
            return
        anchor = self._anchor
        # A note within the same stage is no new start: keep the stage's first line.
        if anchor is None or (anchor.stage, anchor.fraction) != (self.stage, fraction):
            end = stage_end if stage_end is not None and stage_end > fraction else fraction
            self._anchor = _Anchor(self.stage, fraction, end, now - self.started)
        self._shown = max(self._shown, fraction)

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started)

    def _total(self, now: float) -> float | None:
        """The estimated length of the whole export, or ``None`` before the first stage ended."""
        anchor = self._anchor
        if anchor is None or anchor.fraction <= 0:
            return None
        total = anchor.at / anchor.fraction
        if anchor.stage_end > 0:
            total = max(total, self.elapsed(now) / anchor.stage_end)
        return total

    def remaining(self, now: float) -> float | None:
        """Seconds left, estimated; ``None`` while there is nothing to estimate from yet."""
        if self.done:
            return 0.0
        total = self._total(now)
        return None if total is None else max(0.0, total - self.elapsed(now))

    def fraction(self, now: float) -> float:
        """How far along the export is, for a progress bar: the stage's start, moved on in
        proportion to the time spent in it, never past its end and never backwards."""
        anchor, total = self._anchor, self._total(now)
        if not self.done and anchor is not None and total:
            moved = anchor.fraction + (self.elapsed(now) - anchor.at) / total
            self._shown = max(self._shown, min(moved, anchor.stage_end))
        return self._shown


def _int(value: object, fallback: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def _fraction(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0.0, min(1.0, float(value)))
    return None
