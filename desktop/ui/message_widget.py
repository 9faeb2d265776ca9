"""One message on screen: a bubble with its text, state line and actions.

User messages are shown as typed (plain text, right-aligned, hugging short text); replies are
rendered Markdown. Actions: copy; edit and resend (user); regenerate (the last reply); delete;
and, when a message has alternatives from earlier edits or regenerations, a "‹ 2/3 ›" switch
between the branches the store keeps. A message longer than a preview
(:mod:`desktop.ui.long_text`) shows its start and a "Show all" button that opens the whole
text in a paged viewer; Copy always copies the whole message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication
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

from desktop.store import CANCELLED, ERROR, INTERRUPTED, STREAMING, Message
from desktop.ui.full_text import FullTextDialog
from desktop.ui.i18n import arg
from desktop.ui.long_text import one_line, preview, shorten_runs
from desktop.ui.markdown_view import FittedBrowser, MarkdownView, set_wrapping
from desktop.ui.theme import Colors

USER_WIDTH = 0.78  # share of the chat width a user bubble may take


@dataclass(frozen=True)
class Branches:
    """Where a message sits among its alternatives: ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1
    previous_id: str | None = None
    next_id: str | None = None


class MessageWidget(QWidget):
    """A chat bubble for one stored message.

    Signals:
        editSubmitted(str, str): message id and the edited text, to resend.
        regenerateRequested(str): reply id to answer again.
        deleteRequested(str): message id (and everything after it) to delete.
        branchRequested(str): id of the alternative message to show instead.
    """

    editSubmitted = Signal(str, str)
    regenerateRequested = Signal(str)
    deleteRequested = Signal(str)
    branchRequested = Signal(str)

    def __init__(self, message: Message, colors: Colors, branches: Branches = Branches(),
                 model_name: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self._colors = colors
        self._branches = branches
        self._is_user = message.role == "user"
        self._can_regenerate = False
        self._busy = False
        self._stats_line = ""
        self._shown: str | None = None
        self._elided = False
        # The viewer of the whole text, while it is open.
        self.full_text_dialog: FullTextDialog | None = None

        row = QHBoxLayout(self)
        row.setContentsMargins(16, 6, 16, 6)
        self.bubble = QFrame(self)
        self.bubble.setObjectName("userBubble" if self._is_user else "assistantBubble")
        self.bubble.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        if self._is_user:
            row.addStretch(1)
        row.addWidget(self.bubble)
        box = QVBoxLayout(self.bubble)
        box.setContentsMargins(14, 8, 14, 6)
        box.setSpacing(4)

        self.role_label = QLabel(self.bubble)
        self.role_label.setObjectName("roleLabel")
        self.role_label.setText(self.tr("You") if self._is_user
                                else (one_line(model_name) or self.tr("Assistant")))
        box.addWidget(self.role_label)

        if self._is_user:
            self.content: QWidget = FittedBrowser(self.bubble)
            self.content.setAccessibleName(self.tr("Your message"))
        else:
            self.content = MarkdownView(colors, self.bubble)
            self.content.setAccessibleName(self.tr("Reply"))
        box.addWidget(self.content)

        self.more_row = QWidget(self.bubble)
        more = QHBoxLayout(self.more_row)
        more.setContentsMargins(0, 0, 0, 0)
        self.more_label = QLabel(self.more_row)
        self.more_label.setObjectName("metaLabel")
        self.more_label.setWordWrap(True)
        self.show_all_button = QPushButton(self.tr("Show all"), self.more_row)
        self.show_all_button.setToolTip(self.tr("Read the whole message in a viewer"))
        self.show_all_button.clicked.connect(self._on_show_all_clicked)
        more.addWidget(self.more_label, 1)
        more.addWidget(self.show_all_button)
        self.more_row.hide()
        box.addWidget(self.more_row)

        self.editor = QPlainTextEdit(self.bubble)
        self.editor.setObjectName("editBox")
        self.editor.setAccessibleName(self.tr("Edit message"))
        self.editor.hide()
        box.addWidget(self.editor)
        self._edit_buttons = QWidget(self.bubble)
        edit_row = QHBoxLayout(self._edit_buttons)
        edit_row.setContentsMargins(0, 0, 0, 0)
        edit_row.addStretch(1)
        self.cancel_edit_button = QPushButton(self.tr("Cancel"), self._edit_buttons)
        self.cancel_edit_button.clicked.connect(self._on_cancel_edit_clicked)
        self.save_edit_button = QPushButton(self.tr("Save && send"), self._edit_buttons)
        self.save_edit_button.setToolTip(
            self.tr("Send the edited message; the original and its replies stay as a branch"))
        self.save_edit_button.clicked.connect(self._on_save_edit_clicked)
        edit_row.addWidget(self.cancel_edit_button)
        edit_row.addWidget(self.save_edit_button)
        self._edit_buttons.hide()
        box.addWidget(self._edit_buttons)

        self.meta_label = QLabel(self.bubble)
        self.meta_label.setObjectName("metaLabel")
        self.meta_label.setWordWrap(True)
        self.meta_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.meta_label)

        self.action_bar = QWidget(self.bubble)
        self.action_bar.setObjectName("messageActions")
        actions = QHBoxLayout(self.action_bar)
        actions.setContentsMargins(0, 0, 0, 0)
        actions.setSpacing(2)
        self.previous_button = self._tool("‹", self.tr("Previous version"),
                                          self._on_previous_clicked)
        self.branch_label = QLabel(self.action_bar)
        self.branch_label.setObjectName("metaLabel")
        self.next_button = self._tool("›", self.tr("Next version"), self._on_next_clicked)
        self.copy_button = self._tool(self.tr("Copy"), self.tr("Copy the message text"),
                                      self._on_copy_clicked)
        self.edit_button = self._tool(self.tr("Edit"), self.tr("Edit this message and send it "
                                                               "again"), self._on_edit_clicked)
        self.regenerate_button = self._tool(
            self.tr("Regenerate"), self.tr("Answer again; this reply is kept as a branch"),
            self._on_regenerate_clicked)
        self.delete_button = self._tool(self.tr("Delete"),
                                        self.tr("Delete this message and everything after it"),
                                        self._on_delete_clicked)
        for widget in (self.previous_button, self.branch_label, self.next_button):
            actions.addWidget(widget)
        if self._is_user:
            actions.addStretch(1)
        for widget in (self.copy_button, self.edit_button, self.regenerate_button,
                       self.delete_button):
            actions.addWidget(widget)
        if not self._is_user:
            actions.addStretch(1)
        box.addWidget(self.action_bar)
        self.edit_button.setVisible(self._is_user)
        self.regenerate_button.setVisible(False)
        has_branches = branches.count > 1
        for widget in (self.previous_button, self.branch_label, self.next_button):
            widget.setVisible(has_branches)
        self.branch_label.setText(f"{branches.index + 1}/{branches.count}")
        self.branch_label.setAccessibleName(
            arg(self.tr("Version %1 of %2"), branches.index + 1, branches.count))

        self._copied_timer = QTimer(self)
        self._copied_timer.setSingleShot(True)
        self._copied_timer.setInterval(1500)
        self._copied_timer.timeout.connect(self._on_copied_timeout)
        self.set_message(message)
        self._update_buttons()

    def _tool(self, text: str, tip: str, slot) -> QToolButton:
        button = QToolButton(self.action_bar)
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(tip)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(slot)
        return button

    # --- content ------------------------------------------------------------------------

    def set_message(self, message: Message) -> None:
        """Show ``message`` (same id, maybe new text or state)."""
        self.message = message
        self._set_content(message.text)
        self._stats_line = ""
        if message.stats is not None:
            speed = message.stats.tokens_per_s
            self._stats_line = (
                self.tr("%n token(s)", "", message.stats.completion_tokens)
                + (arg(self.tr(" · %1 tokens/s"), f"{speed:.1f}") if speed else ""))
        self._update_meta()
        self._update_buttons()

    def set_streaming_text(self, text: str) -> None:
        self.message = replace(self.message, text=text)
        self._set_content(text)
        self._update_meta()

    def _set_content(self, text: str) -> None:
        """Show ``text``, or its start and how much more there is (the same cost for any
        length: a streamed reply is shown again every 50 ms)."""
        shown = preview(text)
        if isinstance(self.content, MarkdownView):
            self.content.set_markdown(shown.text, text if shown.elided else None)
        elif isinstance(self.content, FittedBrowser) and shown.text != self._shown:
            set_wrapping(self.content, shown.text)
            self.content.setPlainText(shown.text)
        self._shown = shown.text
        self._elided = shown.elided
        self.more_row.setVisible(shown.elided)
        if shown.elided:
            self.more_label.setText(arg(self.tr("Showing %1 of %2 characters."),
                                        f"{len(shown.text):,}", f"{shown.total_chars:,}"))
        self._fit_bubble()

    def _update_meta(self) -> None:
        state = self.message.state
        lines = {
            STREAMING: self.tr("Generating…"),
            CANCELLED: self.tr("Stopped"),
            INTERRUPTED: self.tr("Interrupted: the app closed while this reply was written"),
            ERROR: arg(self.tr("Error: %1"), shorten_runs(self.message.error or "")),
        }
        line = lines.get(state, self._stats_line)
        name = "errorLabel" if state == ERROR else "metaLabel"
        if self.meta_label.objectName() != name:
            self.meta_label.setObjectName(name)
            self.meta_label.style().unpolish(self.meta_label)
            self.meta_label.style().polish(self.meta_label)
        self.meta_label.setText(line)
        self.meta_label.setVisible(bool(line))

    # --- controls -----------------------------------------------------------------------

    def set_controls(self, can_regenerate: bool, busy: bool) -> None:
        """``can_regenerate``: this is the last reply; ``busy``: a reply is being generated."""
        self._can_regenerate, self._busy = can_regenerate, busy
        self._update_buttons()

    def _update_buttons(self) -> None:
        streaming = self.message.state == STREAMING
        self.action_bar.setVisible(not streaming and not self.editor.isVisible())
        self.regenerate_button.setVisible(not self._is_user and self._can_regenerate)
        for button in (self.edit_button, self.regenerate_button, self.delete_button,
                       self.previous_button, self.next_button):
            button.setEnabled(not self._busy and not streaming)
        self.previous_button.setEnabled(self.previous_button.isEnabled()
                                        and self._branches.previous_id is not None)
        self.next_button.setEnabled(self.next_button.isEnabled()
                                    and self._branches.next_id is not None)
        self.copy_button.setEnabled(bool(self.message.text))
        # A message too long to show is too long to edit in a text box here; Copy takes it.
        self.edit_button.setEnabled(self.edit_button.isEnabled() and not self._elided)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_bubble()

    def _fit_bubble(self) -> None:
        """User bubbles hug short text and take at most :data:`USER_WIDTH` of the row."""
        if not self._is_user:
            return
        margins = self.layout().contentsMargins()
        available = self.width() - margins.left() - margins.right()
        inner = self.bubble.layout().contentsMargins()
        padding = inner.left() + inner.right()
        more = (self.more_label.fontMetrics().horizontalAdvance(self.more_label.text())
                + self.show_all_button.sizeHint().width() + 12 if self._elided else 0)
        wanted = max(self.content.natural_width() if isinstance(self.content, FittedBrowser)
                     else 0, self.action_bar.sizeHint().width(),
                     self.role_label.sizeHint().width(), more) + padding
        if self.editor.isVisible():
            wanted = available
        width = max(120, min(wanted, int(available * USER_WIDTH) if not self.editor.isVisible()
                             else available))
        if self.bubble.width() != width or self.bubble.maximumWidth() != width:
            self.bubble.setFixedWidth(width)

    # --- slots --------------------------------------------------------------------------

    @Slot()
    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.message.text)
        self.copy_button.setText(self.tr("Copied"))
        self._copied_timer.start()

    @Slot()
    def _on_copied_timeout(self) -> None:
        self.copy_button.setText(self.tr("Copy"))

    @Slot()
    def _on_show_all_clicked(self) -> None:
        if self.full_text_dialog is not None:
            self.full_text_dialog.raise_()
            return
        dialog = FullTextDialog(self.message.text, self.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(self._on_full_text_closed)
        self.full_text_dialog = dialog
        dialog.open()

    @Slot()
    def _on_full_text_closed(self) -> None:
        self.full_text_dialog = None

    @Slot()
    def _on_edit_clicked(self) -> None:
        self.editor.setPlainText(self.message.text)
        self.content.hide()
        self.action_bar.hide()
        self.editor.show()
        self._edit_buttons.show()
        self.editor.setFocus()
        self._fit_bubble()

    @Slot()
    def _on_cancel_edit_clicked(self) -> None:
        self.editor.hide()
        self._edit_buttons.hide()
        self.content.show()
        self.action_bar.show()
        self._fit_bubble()

    @Slot()
    def _on_save_edit_clicked(self) -> None:
        text = self.editor.toPlainText()
        if not text.strip() or self._busy:
            return
        self._on_cancel_edit_clicked()
        self.editSubmitted.emit(self.message.id, text)

    @Slot()
    def _on_regenerate_clicked(self) -> None:
        self.regenerateRequested.emit(self.message.id)

    @Slot()
    def _on_delete_clicked(self) -> None:
        self.deleteRequested.emit(self.message.id)

    @Slot()
    def _on_previous_clicked(self) -> None:
        if self._branches.previous_id:
            self.branchRequested.emit(self._branches.previous_id)

    @Slot()
    def _on_next_clicked(self) -> None:
        if self._branches.next_id:
            self.branchRequested.emit(self._branches.next_id)
