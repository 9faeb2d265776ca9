"""Syntax colouring of code blocks with Pygments, a few milliseconds at a time.

The whole block is lexed at once (not line by line as a QSyntaxHighlighter would), so strings
and comments that span lines are coloured correctly, and no HTML is produced or parsed. Pygments
is pure Python (tens of microseconds a token), so colouring even a few thousand characters in
one go would stall the window: the code is shown uncoloured at once, and the colours are laid
on in slices of :data:`SLICE_S` between other events. A language's lexer is built once, on a
background thread (compiling its patterns takes a tenth of a second). While a reply streams
into a block, a pass that is under way finishes before the next one starts on the grown text,
so the colours follow the text without ever holding up the window.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache

from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.styles import get_style_by_name
from pygments.token import Token, _TokenType
from pygments.util import ClassNotFound
from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor, QTextDocument

# The longest one slice of colouring may hold the UI thread.
SLICE_S = 0.008
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lexers")


def _make_lexer(language: str) -> Lexer:
    try:
        return get_lexer_by_name(language.lower(), stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


@lru_cache(maxsize=64)
def _lexer(language: str) -> Future[Lexer]:
    """The lexer for ``language`` (plain text when unknown), built once in the background."""
    return _BUILDER.submit(_make_lexer, language)


@lru_cache(maxsize=1024)
def _format(style_name: str, token: _TokenType, default_color: str,
            families: tuple[str, ...]) -> QTextCharFormat:
    style = get_style_by_name(style_name).style_for_token(token)
    fmt = QTextCharFormat()
    fmt.setFontFamilies(list(families))
    fmt.setFontFixedPitch(True)
    fmt.setForeground(QColor(f"#{style['color']}" if style["color"] else default_color))
    if style["bold"]:
        fmt.setFontWeight(QFont.Weight.Bold)
    if style["italic"]:
        fmt.setFontItalic(True)
    return fmt


def normalized(code: str) -> str:
    """``code`` as Pygments sees it (no byte-order mark, ``\\n`` line ends), so the tokens it
    returns line up with the text on screen."""
    code = code[1:] if code.startswith("\ufeff") else code
    return code.replace("\r\n", "\n").replace("\r", "\n")


class Highlighter(QObject):
    """Shows code in ``document`` and colours it for its language in the background.

    ``style_name`` is a Pygments style, ``default_color`` the colour of plain text, and
    ``families`` the monospace fonts, first installed wins (set on the text itself, so no
    widget style can override it).
    """

    def __init__(self, document: QTextDocument, style_name: str, default_color: str,
                 families: tuple[str, ...], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._document = document
        self._style = (style_name, default_color, families)
        self._text = ""
        self._language = ""
        self._lexer: Future[Lexer] | None = None
        self._tokens: Iterator[tuple[_TokenType, str]] | None = None
        self._position = 0
        self._astral = False
        self._stale = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._on_slice_due)

    @property
    def busy(self) -> bool:
        """Whether colours are still being laid on."""
        return self._lexer is not None

    def set_code(self, code: str, language: str) -> None:
        """Show ``code`` now (uncoloured where it is new) and colour it soon."""
        code = normalized(code)
        if code == self._text and language == self._language:
            return
        cursor = QTextCursor(self._document)
        plain = _format(self._style[0], Token, self._style[1], self._style[2])
        if self._text and code.startswith(self._text) and language == self._language:
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(code[len(self._text):], plain)
        else:
            self._document.clear()
            cursor.insertText(code, plain)
            self._lexer = None  # a pass over other text is of no use
        self._text, self._language = code, language
        self._astral = _ASTRAL.search(code) is not None
        if self._lexer is None:
            self._start_pass()
        else:
            self._stale = True  # the pass under way finishes first, then one on this text

    def _start_pass(self) -> None:
        self._lexer = _lexer(self._language)
        self._tokens = None
        self._position = 0
        self._stale = False
        self._timer.start(0 if self._lexer.done() else 10)

    @Slot()
    def _on_slice_due(self) -> None:
        if self._lexer is None:
            self._timer.stop()
            return
        if self._tokens is None:
            if not self._lexer.done():
                return  # still being built
            self._tokens = iter(self._lexer.result().get_tokens(self._text))
            self._timer.setInterval(0)
        tokens = self._tokens
        deadline = time.perf_counter() + SLICE_S
        style, color, families = self._style
        plain = _format(style, Token, color, families)
        cursor = QTextCursor(self._document)
        end = self._document.characterCount() - 1
        cursor.beginEditBlock()
        finished = True
        for token, value in tokens:
            length = len(value.encode("utf-16-le")) // 2 if self._astral else len(value)
            if self._position + length > end:
                break  # the text on screen is not what was lexed: leave the rest plain
            fmt = _format(style, token, color, families)
            if value and fmt != plain:
                cursor.setPosition(self._position)
                cursor.setPosition(self._position + length, QTextCursor.MoveMode.KeepAnchor)
                cursor.setCharFormat(fmt)
            self._position += length
            if time.perf_counter() > deadline:
                finished = False
                break
        cursor.endEditBlock()
        if finished:
            self._lexer = self._tokens = None
            if self._stale:
                self._start_pass()
            else:
                self._timer.stop()
