"""Text hygiene at the edges: what a user pastes may not be valid Unicode text."""

from __future__ import annotations

import unicodedata


def clean_text(text: str) -> str:
    """Replace lone UTF-16 surrogates (possible in a Python ``str`` from a clipboard or a
    terminal, impossible to encode as UTF-8) with U+FFFD; everything else, NUL bytes,
    right-to-left marks and combining characters included, is kept as typed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text



def one_line(text: str) -> str:
    """``text`` safe to print on one terminal line: control characters — line breaks, and
    escape sequences that recolour the terminal, retitle its window or forge a row of a
    listing — are shown escaped (``\\n``, ``\\x1b``); everything else as it is."""
    return "".join(repr(char)[1:-1] if unicodedata.category(char) == "Cc" else char
                   for char in text)
