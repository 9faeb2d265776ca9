"""Syntax colouring of code blocks with Pygments, written straight into a QTextDocument.

The whole block is lexed at once (not line by line as a QSyntaxHighlighter would), so strings
and comments that span lines are coloured correctly, and no HTML is produced or parsed.
"""

from __future__ import annotations

from functools import lru_cache

from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor, QTextDocument


@lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer:
    try:
        return get_lexer_by_name(language.lower(), stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


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


def highlight(document: QTextDocument, code: str, language: str, style_name: str,
              default_color: str, families: tuple[str, ...]) -> None:
    """Replace the document's text with ``code``, coloured for ``language``, in the first
    installed of ``families`` (set on the text itself, so no widget style can override it)."""
    document.clear()
    cursor = QTextCursor(document)
    cursor.beginEditBlock()
    for token, value in _lexer(language).get_tokens(code):
        cursor.insertText(value, _format(style_name, token, default_color, families))
    cursor.endEditBlock()
