"""The message input: a growing multi-line box with Send and, while a reply streams, Stop.

Enter sends and Shift+Enter starts a new line, as in other chat apps; text being composed
with an input method (Chinese, Japanese) is not sent by the Enter that confirms it, because
that Enter reaches the input method, not this box.

A paste of more than :data:`PASTE_LIMIT` characters is not put in the box, where Qt would take
seconds to lay out a long unbroken line: it is held beside it ("Pasted text: 1,000,000
characters", with Show and Remove) and sent after what is typed, separated by a blank line.
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.full_text import FullTextDialog
from desktop.ui.i18n import arg

MAX_LINES = 8
# Pastes longer than this are held beside the box rather than typed into it.
PASTE_LIMIT = 100_000


class InputBox(QPlainTextEdit):
    """Multi-line text that asks to be sent on Enter.

    Signals:
        submitted(): Enter was pressed without Shift.
        largePaste(str): text over :data:`PASTE_LIMIT` characters was pasted or dropped
            (and not inserted).
    """

    submitted = Signal()
    largePaste = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(6)
        self.document().contentsChanged.connect(self._on_contents_changed)
        self._on_contents_changed()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            modifiers = event.modifiers()
            if modifiers & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
                return
            if not modifiers & (Qt.KeyboardModifier.ControlModifier
                                | Qt.KeyboardModifier.AltModifier):
                self.submitted.emit()
                return
        super().keyPressEvent(event)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasText() and len(text := source.text()) > PASTE_LIMIT:
            self.largePaste.emit(text)
            return
        super().insertFromMimeData(source)

    @Slot()
    def _on_contents_changed(self) -> None:
        lines = max(1, min(MAX_LINES, self.document().lineCount()))
        line_height = self.fontMetrics().lineSpacing()
        margin = 2 * int(self.document().documentMargin()) + 2 * self.frameWidth()
        height = lines * line_height + margin + 4
        if height != self.height():
            self.setFixedHeight(height)


class Composer(QFrame):
    """Input box, Send and Stop.

    Signals:
        sendRequested(str): the text to send (not empty).
        stopRequested(): Stop was pressed.
        textEdited(): the draft changed (for the context meter).
    """

    sendRequested = Signal(str)
    stopRequested = Signal()
    textEdited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self._generating = False
        self._blocked_reason: str | None = None
        self._pasted = ""
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 6)
        outer.setSpacing(2)
        self.paste_row = QWidget(self)
        paste = QHBoxLayout(self.paste_row)
        paste.setContentsMargins(4, 0, 0, 0)
        self.paste_label = QLabel(self.paste_row)
        self.paste_label.setObjectName("metaLabel")
        self.show_paste_button = QToolButton(self.paste_row)
        self.show_paste_button.setText(self.tr("Show"))
        self.show_paste_button.setToolTip(self.tr("Read the pasted text"))
        self.show_paste_button.clicked.connect(self._on_show_paste_clicked)
        self.remove_paste_button = QToolButton(self.paste_row)
        self.remove_paste_button.setText(self.tr("Remove"))
        self.remove_paste_button.setToolTip(self.tr("Leave the pasted text out of the message"))
        self.remove_paste_button.clicked.connect(self._on_remove_paste_clicked)
        paste.addWidget(self.paste_label, 1)
        paste.addWidget(self.show_paste_button)
        paste.addWidget(self.remove_paste_button)
        self.paste_row.hide()
        outer.addWidget(self.paste_row)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.input = InputBox(self)
        self.input.setPlaceholderText(self.tr("Message — Enter to send, Shift+Enter for a "
                                              "new line"))
        self.input.setAccessibleName(self.tr("Message input"))
        self.input.submitted.connect(self._on_submitted)
        self.input.textChanged.connect(self._on_text_changed)
        self.input.largePaste.connect(self._on_large_paste)
        self.send_button = QPushButton(self.tr("Send"), self)
        self.send_button.setObjectName("sendButton")
        self.send_button.setAccessibleName(self.tr("Send message"))
        self.send_button.setToolTip(self.tr("Send (Enter)"))
        self.send_button.clicked.connect(self._on_submitted)
        self.stop_button = QPushButton(self.tr("Stop"), self)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setAccessibleName(self.tr("Stop generating"))
        self.stop_button.setToolTip(self.tr("Stop the reply (Esc)"))
        self.stop_button.clicked.connect(self.stopRequested)
        self.stop_button.hide()
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        row.addWidget(self.stop_button, 0, Qt.AlignmentFlag.AlignBottom)
        outer.addLayout(row)
        self.reason_label = QLabel(self)
        self.reason_label.setObjectName("hintLabel")
        self.reason_label.hide()
        outer.addWidget(self.reason_label)
        self._update()

    @property
    def text(self) -> str:
        """The message as it would be sent: what is typed, then any large pasted text."""
        typed = self.input.toPlainText()
        if not self._pasted:
            return typed
        return f"{typed}\n\n{self._pasted}" if typed.strip() else self._pasted

    @property
    def pasted(self) -> str:
        """The large pasted text held beside the box ("" when none)."""
        return self._pasted

    def set_generating(self, generating: bool) -> None:
        self._generating = generating
        self._update()

    def set_blocked(self, reason: str | None) -> None:
        """Why sending is impossible right now (no model, loading), or ``None``."""
        self._blocked_reason = reason
        self._update()

    def clear(self) -> None:
        self.input.clear()
        self._set_pasted("")

    def focus_input(self) -> None:
        self.input.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def can_send(self) -> bool:
        return (not self._generating and self._blocked_reason is None
                and bool(self._pasted.strip() or self.input.toPlainText().strip()))

    def _update(self) -> None:
        self.stop_button.setVisible(self._generating)
        self.send_button.setEnabled(self.can_send())
        self.reason_label.setVisible(self._blocked_reason is not None)
        self.reason_label.setText(self._blocked_reason or "")

    @Slot()
    def _on_submitted(self) -> None:
        if self.can_send():
            self.sendRequested.emit(self.text)

    @Slot()
    def _on_text_changed(self) -> None:
        self._update()
        self.textEdited.emit()

    def _set_pasted(self, text: str) -> None:
        if text == self._pasted:
            return
        self._pasted = text
        self.paste_row.setVisible(bool(text))
        self.paste_label.setText(arg(self.tr("Pasted text: %1 characters"), f"{len(text):,}"))
        self._on_text_changed()

    @Slot(str)
    def _on_large_paste(self, text: str) -> None:
        self._set_pasted(f"{self._pasted}\n\n{text}" if self._pasted else text)

    @Slot()
    def _on_show_paste_clicked(self) -> None:
        dialog = FullTextDialog(self._pasted, self.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    @Slot()
    def _on_remove_paste_clicked(self) -> None:
        self._set_pasted("")
