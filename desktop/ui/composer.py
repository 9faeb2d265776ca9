"""The message input: a growing multi-line box with Send and, while a reply streams, Stop.

Enter sends and Shift+Enter starts a new line, as in other chat apps; text being composed
with an input method (Chinese, Japanese) is not sent by the Enter that confirms it, because
that Enter reaches the input method, not this box.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

MAX_LINES = 8


class InputBox(QPlainTextEdit):
    """Multi-line text that asks to be sent on Enter.

    Signals:
        submitted(): Enter was pressed without Shift.
    """

    submitted = Signal()

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
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 6)
        outer.setSpacing(2)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.input = InputBox(self)
        self.input.setPlaceholderText(self.tr("Message — Enter to send, Shift+Enter for a "
                                              "new line"))
        self.input.setAccessibleName(self.tr("Message input"))
        self.input.submitted.connect(self._on_submitted)
        self.input.textChanged.connect(self._on_text_changed)
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
        return self.input.toPlainText()

    def set_generating(self, generating: bool) -> None:
        self._generating = generating
        self._update()

    def set_blocked(self, reason: str | None) -> None:
        """Why sending is impossible right now (no model, loading), or ``None``."""
        self._blocked_reason = reason
        self._update()

    def clear(self) -> None:
        self.input.clear()

    def focus_input(self) -> None:
        self.input.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def can_send(self) -> bool:
        return (not self._generating and self._blocked_reason is None
                and bool(self.text.strip()))

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
