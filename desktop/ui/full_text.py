"""The whole of a long message in a read-only viewer, a page at a time.

A message over the preview size (:mod:`desktop.ui.long_text`) opens here from its "Show all"
button. Even a plain-text view takes seconds to take in 10 MB at once, so the text is shown in
pages of :data:`PAGE_CHARS` characters, each laid out in a few milliseconds; a page with a long
unbroken run wraps anywhere instead of searching for a word boundary.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QGuiApplication, QTextOption
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.i18n import arg
from desktop.ui.long_text import has_long_run

PAGE_CHARS = 40_000


class FullTextDialog(QDialog):
    """Shows ``text`` page by page, with Copy all for the whole of it."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Whole message"))
        self.resize(900, 640)
        self._text = text
        self.page_count = max(1, -(-len(text) // PAGE_CHARS))
        layout = QVBoxLayout(self)
        self.view = QPlainTextEdit(self)
        self.view.setReadOnly(True)
        self.view.setAccessibleName(self.tr("Message text"))
        self.view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        layout.addWidget(self.view, 1)

        row = QHBoxLayout()
        self.previous_button = QPushButton(self.tr("Previous page"), self)
        self.previous_button.clicked.connect(self._on_previous_clicked)
        self.page_box = QSpinBox(self)
        self.page_box.setRange(1, self.page_count)
        self.page_box.setAccessibleName(self.tr("Page"))
        self.page_box.setSuffix(arg(self.tr(" of %1"), f"{self.page_count:,}"))
        self.page_box.valueChanged.connect(self._on_page_chosen)
        self.next_button = QPushButton(self.tr("Next page"), self)
        self.next_button.clicked.connect(self._on_next_clicked)
        self.position_label = QLabel(self)
        self.position_label.setObjectName("metaLabel")
        for widget in (self.previous_button, self.page_box, self.next_button):
            widget.setVisible(self.page_count > 1)
            row.addWidget(widget)
        row.addWidget(self.position_label, 1)
        self.copy_button = QPushButton(self.tr("Copy all"), self)
        self.copy_button.setToolTip(self.tr("Copy the whole message to the clipboard"))
        self.copy_button.clicked.connect(self._on_copy_clicked)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.show_page(0)

    @property
    def page(self) -> int:
        """The page on screen, from 0."""
        return self.page_box.value() - 1

    def show_page(self, index: int) -> None:
        """Show page ``index`` (from 0) of the text."""
        index = max(0, min(index, self.page_count - 1))
        start = index * PAGE_CHARS
        chunk = self._text[start:start + PAGE_CHARS]
        self.view.setWordWrapMode(QTextOption.WrapMode.WrapAnywhere if has_long_run(chunk)
                                  else QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.view.setPlainText(chunk)
        if self.page_box.value() != index + 1:
            self.page_box.blockSignals(True)
            self.page_box.setValue(index + 1)
            self.page_box.blockSignals(False)
        self.previous_button.setEnabled(index > 0)
        self.next_button.setEnabled(index + 1 < self.page_count)
        self.position_label.setText(
            arg(self.tr("Characters %1–%2 of %3"), f"{start + 1 if chunk else 0:,}",
                f"{start + len(chunk):,}", f"{len(self._text):,}"))

    @Slot()
    def _on_previous_clicked(self) -> None:
        self.show_page(self.page - 1)

    @Slot()
    def _on_next_clicked(self) -> None:
        self.show_page(self.page + 1)

    @Slot(int)
    def _on_page_chosen(self, value: int) -> None:
        self.show_page(value - 1)

    @Slot()
    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self._text)
        self.copy_button.setText(self.tr("Copied"))
