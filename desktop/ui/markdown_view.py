"""Rendering a message: Markdown prose through QTextDocument, code blocks as their own
widgets (monospace, coloured, with a copy button), and text that sizes itself to its content.

A reply is split at its fenced code blocks; while it streams, only segments whose text changed
are re-rendered (normally just the last one), so a long reply stays cheap to update. Text with
a long unbroken run wraps anywhere: Qt's search for a word boundary that never comes is
quadratic in the run's length.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from PySide6.QtCore import Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication, QTextDocument, QTextOption
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.highlight import Highlighter
from desktop.ui.long_text import has_long_run
from desktop.ui.theme import Colors, monospace_families, monospace_font

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$")
_MARKDOWN = (QTextDocument.MarkdownFeature.MarkdownDialectGitHub
             | QTextDocument.MarkdownFeature.MarkdownNoHTML)
_SAFE_SCHEMES = ("http", "https", "mailto")


@dataclass(frozen=True)
class Segment:
    """A run of Markdown prose (``kind`` "text") or one fenced code block ("code").

    A code block also notes its ``fence`` and whether the text ``closed`` it (not part of
    equality: a segment that only got its closing fence shows the same).
    """

    kind: str
    text: str
    language: str = ""
    fence: str = field(default="", compare=False)
    closed: bool = field(default=True, compare=False)


def split_markdown(text: str) -> list[Segment]:
    """Cut ``text`` at fenced code blocks. An unclosed fence (a reply still streaming) runs to
    the end of the text."""
    segments: list[Segment] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opened = _FENCE_OPEN.match(lines[i])
        if not opened:
            prose.append(lines[i])
            i += 1
            continue
        fence, language = opened.group(1), opened.group(2)
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            body.append(lines[i])
            i += 1
        closed = i < len(lines)
        i += 1  # the closing fence (or past the end)
        if "".join(prose).strip():
            segments.append(Segment("text", "\n".join(prose).strip("\n")))
        prose = []
        segments.append(Segment("code", "\n".join(body), language, fence, closed))
    if "".join(prose).strip():
        segments.append(Segment("text", "\n".join(prose).strip("\n")))
    return segments


def whole_code(text: str, shown: int, block: Segment) -> str:
    """The whole of code ``block``, which ``text[:shown]`` leaves open: its lines shown and
    the rest up to the closing fence in ``text`` (or to the end)."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(block.fence[0])}{{{len(block.fence)},}}[ \t]*$",
                         re.MULTILINE)
    found = closing.search(text, shown)
    end = len(text) if found is None else max(shown, found.start() - 1)
    return block.text + text[shown:end]


def set_wrapping(browser: QTextBrowser, text: str) -> None:
    """Wrap ``text`` at word boundaries, or anywhere when it has a long unbroken run."""
    mode = (QTextOption.WrapMode.WrapAnywhere if has_long_run(text)
            else QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    if browser.wordWrapMode() != mode:
        browser.setWordWrapMode(mode)


class FittedBrowser(QTextBrowser):
    """Read-only rich text whose height follows its content; nothing outside it is loaded.

    Links open in the system browser (web and mail links only); images and other resources a
    model might name are never fetched or read from disk.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._on_anchor_clicked)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.setFixedHeight(self._content_height())

    def loadResource(self, kind: int, url: QUrl) -> object:
        return None

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _content_height(self) -> int:
        return math.ceil(self.document().size().height()) + 2 * self.frameWidth()

    @Slot()
    def _fit(self, *_: object) -> None:
        width = self.viewport().width()
        if self.document().textWidth() != width:
            self.document().setTextWidth(width)
        height = self._content_height()
        if height != self.height():
            self.setFixedHeight(height)

    @Slot(QUrl)
    def _on_anchor_clicked(self, url: QUrl) -> None:
        if url.scheme() in _SAFE_SCHEMES:
            QDesktopServices.openUrl(url)

    def natural_width(self) -> int:
        """The width the text needs without wrapping (for bubbles that hug short messages)."""
        metrics = self.fontMetrics()
        widest = max((metrics.horizontalAdvance(line)
                      for line in self.toPlainText().split("\n")), default=0)
        return widest + 2 * math.ceil(self.document().documentMargin()) + 6


class CodeBlock(QFrame):
    """One fenced code block: language, copy button, and the coloured code (no wrapping)."""

    def __init__(self, colors: Colors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self._colors = colors
        self._code = ""
        self._language = ""
        # Where Copy gets the whole block when only its start is shown (else ``None``).
        self.whole_code: Callable[[], str] | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        header = QWidget(self)
        header.setObjectName("codeHeader")
        row = QHBoxLayout(header)
        row.setContentsMargins(10, 2, 4, 2)
        self._language_label = QLabel(header)
        self._language_label.setObjectName("metaLabel")
        self.copy_button = QToolButton(header)
        self.copy_button.setText(self.tr("Copy code"))
        self.copy_button.setAccessibleName(self.tr("Copy code"))
        self.copy_button.setToolTip(self.tr("Copy this code block to the clipboard"))
        self.copy_button.clicked.connect(self._on_copy_clicked)
        row.addWidget(self._language_label)
        row.addStretch(1)
        row.addWidget(self.copy_button)
        layout.addWidget(header)
        self.view = QTextBrowser(self)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        self._families = tuple(monospace_families())
        self.view.setFont(monospace_font())
        self.view.setWordWrapMode(QTextOption.WrapMode.NoWrap)
        self.view.setLineWrapMode(QTextBrowser.LineWrapMode.NoWrap)
        self.view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.view.document().setDocumentMargin(8)
        self.view.setAccessibleName(self.tr("Code"))
        self.view.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.highlighter = Highlighter(self.view.document(), colors.pygments_style, colors.text,
                                       self._families, self)
        layout.addWidget(self.view)
        self._copied_timer = QTimer(self)
        self._copied_timer.setSingleShot(True)
        self._copied_timer.setInterval(1500)
        self._copied_timer.timeout.connect(self._on_copied_timeout)

    @property
    def code(self) -> str:
        return self._code

    def set_code(self, code: str, language: str) -> None:
        if code == self._code and language == self._language:
            return
        self._code, self._language = code, language
        self._language_label.setText(language or self.tr("code"))
        self.highlighter.set_code(code, language)
        self._fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    @Slot()
    def _fit(self, *_: object) -> None:
        document = self.view.document()
        height = math.ceil(document.size().height()) + 2
        if document.idealWidth() > self.view.viewport().width():
            height += self.view.horizontalScrollBar().sizeHint().height()
        if height != self.view.height():
            self.view.setFixedHeight(height)

    @Slot()
    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.whole_code() if self.whole_code else self._code)
        self.copy_button.setText(self.tr("Copied"))
        self._copied_timer.start()

    @Slot()
    def _on_copied_timeout(self) -> None:
        self.copy_button.setText(self.tr("Copy code"))


class MarkdownView(QWidget):
    """A message's content: prose and code segments stacked, updated in place."""

    def __init__(self, colors: Colors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colors = colors
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(8)
        self._segments: list[Segment] = []
        self._widgets: list[QWidget] = []

    def set_markdown(self, text: str, whole: str | None = None) -> None:
        """Show Markdown ``text``: all of the message, or the start of ``whole``."""
        segments = split_markdown(text)
        for index, segment in enumerate(segments):
            if index < len(self._segments) and self._segments[index] == segment:
                continue
            reusable = (index < len(self._widgets)
                        and self._segments[index].kind == segment.kind)
            if not reusable:
                for widget in self._widgets[index:]:
                    widget.deleteLater()
                    self._layout.removeWidget(widget)
                del self._widgets[index:]
                del self._segments[index:]
                self._widgets.append(self._make(segment.kind))
                self._layout.addWidget(self._widgets[index])
            self._render(self._widgets[index], segment)
            if index < len(self._segments):
                self._segments[index] = segment
            else:
                self._segments.append(segment)
        for widget in self._widgets[len(segments):]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        del self._widgets[len(segments):]
        del self._segments[len(segments):]
        for widget in self.code_blocks():
            widget.whole_code = None
        if (whole is not None and len(whole) > len(text) and segments
                and segments[-1].kind == "code" and not segments[-1].closed):
            last = self._widgets[-1]
            assert isinstance(last, CodeBlock)
            last.whole_code = partial(whole_code, whole, len(text), segments[-1])

    def _make(self, kind: str) -> QWidget:
        if kind == "code":
            return CodeBlock(self._colors, self)
        browser = FittedBrowser(self)
        browser.setAccessibleName(self.tr("Message text"))
        return browser

    @staticmethod
    def _render(widget: QWidget, segment: Segment) -> None:
        if isinstance(widget, CodeBlock):
            widget.set_code(segment.text, segment.language)
        elif isinstance(widget, FittedBrowser):
            set_wrapping(widget, segment.text)
            widget.document().setMarkdown(segment.text, _MARKDOWN)
            widget._fit()

    def code_blocks(self) -> list[CodeBlock]:
        return [w for w in self._widgets if isinstance(w, CodeBlock)]
