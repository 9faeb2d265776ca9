"""Keeping text of any length cheap to show: previews of long messages and shortened values.

Qt lays out a message in the UI thread, and its cost grows with the text: a million digits
without a break took minutes (finding a word boundary that never comes is quadratic), a 10 MB
code block seconds of colouring. So a message on screen shows at most :data:`PREVIEW_CHARS`
characters and :data:`PREVIEW_LINES` lines; the rest is one click away in a paged viewer
(:mod:`desktop.ui.full_text`), and Copy still copies the whole text. Values shown in labels
(an error naming a 401-digit seed, a long model name from an imported chat) have their long
unbroken runs shortened, so no label can widen the window past the screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The most of one message built into widgets; enough for any ordinary reply.
PREVIEW_CHARS = 4_000
PREVIEW_LINES = 100
# A run without a break opportunity this long is wrapped anywhere, not at word boundaries.
LONG_RUN = 200
# What a line costs to lay out, in characters (for :func:`weight`).
LINE_WEIGHT = 20
# Runs of a label's text with no place to break a line (spaces, slashes, hyphens) longer
# than this are shortened in the middle.
LABEL_RUN = 64

_LONG_RUN = re.compile(rf"\S{{{LONG_RUN},}}")
_LABEL_RUN = re.compile(rf"[^\s/\\-]{{{LABEL_RUN + 1},}}")


@dataclass(frozen=True)
class Preview:
    """The part of a message that is shown: ``text``, out of ``total_chars`` characters."""

    text: str
    total_chars: int

    @property
    def elided(self) -> bool:
        return len(self.text) < self.total_chars


def preview(text: str) -> Preview:
    """The start of ``text``: at most :data:`PREVIEW_CHARS` characters and
    :data:`PREVIEW_LINES` lines (cut at a line break). Costs the same for any length."""
    end = min(len(text), PREVIEW_CHARS)
    cut = -1
    for _ in range(PREVIEW_LINES):
        cut = text.find("\n", cut + 1, end)
        if cut < 0:
            break
    else:
        end = cut
    return Preview(text[:end], len(text))


def weight(text: str) -> int:
    """What showing ``text`` costs, in characters of a preview (lines count extra)."""
    shown = min(len(text), PREVIEW_CHARS)
    return shown + LINE_WEIGHT * min(text.count("\n", 0, shown), PREVIEW_LINES)


def has_long_run(text: str) -> bool:
    """Whether ``text`` has a run of :data:`LONG_RUN` characters with no space to break at."""
    return _LONG_RUN.search(text) is not None


def shorten_runs(text: str) -> str:
    """``text`` with every unbroken run over :data:`LABEL_RUN` characters cut in the middle
    ("1000000000000000000000000000000…0000000000000000000000000000000"), for labels that must
    fit the window (a word-wrapped label is as wide as its longest run)."""
    half = (LABEL_RUN - 1) // 2
    return _LABEL_RUN.sub(lambda m: f"{m.group()[:half]}…{m.group()[-half:]}", text)


def one_line(text: str, limit: int = 80) -> str:
    """``text`` on one line of at most ``limit`` characters (a name in a heading)."""
    line = " ".join(text[:limit * 4].split())
    return line if len(line) <= limit else line[:limit - 1] + "…"
