"""The conversation on screen: message bubbles in a scroll area, built lazily.

Only the newest :data:`PAGE` messages get widgets when a conversation opens, and no more than
:data:`PAGE_WEIGHT` characters of previews (:func:`desktop.ui.long_text.weight`), so a page of
long messages costs no more than one of short ones. Older ones are built a page at a time when
the user scrolls to the top (or presses "Show earlier messages"), so a chat with thousands of
messages opens as fast as a short one. Updates are applied as a diff against what is on
screen (same ids keep their widgets), so sending, regenerating or editing rebuilds only the
tail.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from desktop.store import ChatStore, Message
from desktop.ui.i18n import arg
from desktop.ui.long_text import PREVIEW_CHARS, weight
from desktop.ui.message_widget import Branches, MessageWidget
from desktop.ui.theme import Colors

PAGE = 40
# About three messages at their longest preview, or a page of ordinary ones.
PAGE_WEIGHT = 3 * PREVIEW_CHARS
_BOTTOM_SLACK = 48  # pixels from the end that still count as "at the bottom"


class ChatView(QScrollArea):
    """Shows one conversation's branch and the reply streaming into it.

    Signals:
        editSubmitted(str, str): a user message id and its edited text.
        regenerateRequested(str): a reply id.
        deleteRequested(str): a message id.
        branchRequested(str): a message id whose branch should be shown.
    """

    editSubmitted = Signal(str, str)
    regenerateRequested = Signal(str)
    deleteRequested = Signal(str)
    branchRequested = Signal(str)

    def __init__(self, store: ChatStore, colors: Colors, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatScroll")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAccessibleName(self.tr("Conversation"))
        self._store = store
        self._colors = colors
        self._messages: list[Message] = []
        self._widgets: list[MessageWidget] = []
        self._first = 0
        self._busy = False
        self._model_name = ""
        self._stick = True
        self._restore_from_end: int | None = None

        container = QWidget(self)
        container.setObjectName("chatContainer")
        self._layout = QVBoxLayout(container)
        self._layout.setContentsMargins(0, 12, 0, 12)
        self._layout.setSpacing(2)
        self.earlier_button = QPushButton(self.tr("Show earlier messages"), container)
        self.earlier_button.setFlat(True)
        self.earlier_button.clicked.connect(self._on_earlier_clicked)
        self.earlier_button.hide()
        self._layout.addWidget(self.earlier_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.empty_label = QLabel(container)
        self.empty_label.setObjectName("hintLabel")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self._layout.addStretch(1)
        self._layout.addWidget(self.empty_label)
        self._layout.addStretch(1)
        self._message_index = 1  # widgets go after the "earlier" button
        self.setWidget(container)

        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)
        self._update_empty()

    # --- public -------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        return list(self._messages)

    def widgets(self) -> list[MessageWidget]:
        return list(self._widgets)

    def set_model_name(self, name: str) -> None:
        self._model_name = name
        self._update_empty()

    def show_conversation(self, messages: Sequence[Message]) -> None:
        """Show another conversation (or none): rebuild from scratch, scrolled to the end."""
        self._clear()
        self._messages = list(messages)
        self._first = self._page_start(len(self._messages))
        for message in self._messages[self._first:]:
            self._append_widget(message)
        self._after_change()
        self._stick = True
        self.scroll_to_bottom()

    def sync(self, messages: Sequence[Message]) -> None:
        """Show the same conversation's current branch, keeping the unchanged widgets."""
        messages = list(messages)
        shown = self._messages[self._first:]
        keep = 0
        while (keep < len(shown) and self._first + keep < len(messages)
               and shown[keep].id == messages[self._first + keep].id):
            keep += 1
        if self._first > 0 and (len(messages) < self._first
                                or [m.id for m in messages[:self._first]]
                                != [m.id for m in self._messages[:self._first]]):
            self.show_conversation(messages)  # the unbuilt part changed: start over
            return
        for widget in self._widgets[keep:]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        del self._widgets[keep:]
        for index in range(keep):
            new = messages[self._first + index]
            if new != self._widgets[index].message:
                self._widgets[index].set_message(new)
        self._messages = messages
        for message in messages[self._first + keep:]:
            self._append_widget(message)
        self._after_change()

    def update_streaming(self, message_id: str, text: str) -> None:
        """New text for the reply being generated (already throttled by the controller)."""
        for widget in reversed(self._widgets):
            if widget.message.id == message_id:
                widget.set_streaming_text(text)
                return

    def set_busy(self, busy: bool) -> None:
        """Disable the message actions while a reply is generated."""
        self._busy = busy
        self._update_controls()

    def scroll_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def show_earlier(self) -> None:
        """Build the next :data:`PAGE` older messages, keeping the view where it was."""
        if self._first == 0:
            return
        bar = self.verticalScrollBar()
        self._restore_from_end = bar.maximum() - bar.value()
        start = self._page_start(self._first)
        for offset, message in enumerate(self._messages[start:self._first]):
            widget = self._make_widget(message)
            self._layout.insertWidget(self._message_index + offset, widget)
            self._widgets.insert(offset, widget)
        self._first = start
        self._after_change()

    # --- internals ----------------------------------------------------------------------

    def _page_start(self, end: int) -> int:
        """Where the page of messages before index ``end`` starts: at most :data:`PAGE`
        messages and :data:`PAGE_WEIGHT` of text to show, but at least one message."""
        start, total = end, 0
        while start > max(0, end - PAGE):
            total += weight(self._messages[start - 1].text)
            if total > PAGE_WEIGHT and start < end:
                break
            start -= 1
        return start

    def _clear(self) -> None:
        for widget in self._widgets:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self._widgets = []
        self._messages = []
        self._first = 0

    def _make_widget(self, message: Message) -> MessageWidget:
        widget = MessageWidget(message, self._colors, self._branches(message),
                               message.repro.model if message.repro else self._model_name,
                               self.widget())
        widget.editSubmitted.connect(self.editSubmitted)
        widget.regenerateRequested.connect(self.regenerateRequested)
        widget.deleteRequested.connect(self.deleteRequested)
        widget.branchRequested.connect(self.branchRequested)
        return widget

    def _append_widget(self, message: Message) -> None:
        widget = self._make_widget(message)
        self._layout.insertWidget(self._message_index + len(self._widgets), widget)
        self._widgets.append(widget)

    def _branches(self, message: Message) -> Branches:
        ids = self._store.sibling_ids(message.id)
        if len(ids) < 2:
            return Branches()
        index = ids.index(message.id)
        return Branches(index, len(ids), ids[index - 1] if index > 0 else None,
                        ids[index + 1] if index + 1 < len(ids) else None)

    def _after_change(self) -> None:
        self.earlier_button.setVisible(self._first > 0)
        if self._first > 0:
            self.earlier_button.setText(
                self.tr("Show earlier messages (%n more)", "", self._first))
        self._update_controls()
        self._update_empty()

    def _update_controls(self) -> None:
        last_reply = next((w for w in reversed(self._widgets)
                           if w.message.role == "assistant"), None)
        is_last = last_reply is not None and last_reply is self._widgets[-1]
        for widget in self._widgets:
            widget.set_controls(is_last and widget is last_reply, self._busy)

    def _update_empty(self) -> None:
        empty = not self._messages
        self.empty_label.setVisible(empty)
        if empty:
            ready = (arg(self.tr("Chatting with %1."), self._model_name)
                     if self._model_name else self.tr("No model is loaded yet."))
            self.empty_label.setText(
                ready + "\n" + self.tr("Type a message below. Enter sends, Shift+Enter starts a "
                                       "new line."))

    @Slot(int, int)
    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        bar = self.verticalScrollBar()
        if self._restore_from_end is not None:
            bar.setValue(maximum - self._restore_from_end)
            self._restore_from_end = None
        elif self._stick:
            bar.setValue(maximum)

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick = value >= bar.maximum() - _BOTTOM_SLACK
        if value == bar.minimum() and self._first > 0 and bar.maximum() > 0:
            QTimer.singleShot(0, self, self.show_earlier)

    @Slot()
    def _on_earlier_clicked(self) -> None:
        self.show_earlier()
