"""Progress of an export, for people (stderr lines) and for a GUI (JSON lines on stdout).

An export takes about a minute for the default model; step lines with the elapsed time tell
a person it is alive, and one JSON object per line lets a GUI draw a progress bar without
parsing prose. Each JSON line names its stage and the fraction at which that stage ends, so a
GUI can estimate the time left from the lines alone (the stage weights stay here).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Step:
    """One stage of the pipeline; ``weight`` is its share of the total time."""

    key: str
    weight: float


STEPS: tuple[Step, ...] = (
    Step("load", 0.15),
    Step("onnx", 0.62),
    Step("quantize", 0.08),
    Step("validate", 0.08),
    Step("write", 0.07),
)


class Progress:
    """Reports step starts and the end of an export; silent when both streams are None."""

    def __init__(self, text: TextIO | None = None, json_lines: TextIO | None = None) -> None:
        self._text = text
        self._json = json_lines
        self._start = time.monotonic()
        self._index = 0

    @classmethod
    def for_cli(cls, progress_json: bool) -> Progress:
        return cls(text=sys.stderr, json_lines=sys.stdout if progress_json else None)

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def _fraction_before(self, index: int) -> float:
        return sum(step.weight for step in STEPS[: index - 1])

    def step(self, key: str, message: str) -> None:
        """Start the step named ``key`` (one of :data:`STEPS`)."""
        index = next(i for i, step in enumerate(STEPS, start=1) if step.key == key)
        self._index = index
        self._emit(index, self._fraction_before(index), message)

    def note(self, message: str) -> None:
        """A line about the current step that is not a new step (a recipe fallback)."""
        self._emit(self._index or 1, self._fraction_before(self._index or 1), message)

    def done(self, message: str) -> None:
        self._emit(len(STEPS), 1.0, message, done=True)

    def failed(self, message: str) -> None:
        """Tell a GUI the export ended with an error (the CLI prints the line itself)."""
        if self._json is not None:
            self._write_json({"step": self._index, "steps": len(STEPS), "error": message})

    def _emit(self, index: int, fraction: float, message: str, done: bool = False) -> None:
        elapsed = self.elapsed()
        if self._text is not None:
            prefix = "     " if done else f"[{index}/{len(STEPS)}]"
            self._text.write(f"{prefix} {message} ({elapsed:.1f} s)\n")
            self._text.flush()
        if self._json is not None:
            record = {
                "step": index,
                "steps": len(STEPS),
                "stage": STEPS[index - 1].key,
                "fraction": round(fraction, 3),
                "stage_end": round(self._fraction_before(index + 1), 3),
                "message": message,
                "elapsed_s": round(elapsed, 1),
            }
            if done:
                record["done"] = True
            self._write_json(record)

    def _write_json(self, record: dict[str, object]) -> None:
        assert self._json is not None
        self._json.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._json.flush()
