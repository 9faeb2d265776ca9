"""The first-run page: shown instead of an empty chat while no model is installed."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from desktop.ui.export_dialog import INSTALL_COMMAND, export_available


class WelcomePage(QWidget):
    """Offers to prepare the bundled default model (or says how to get the export step).

    Signals:
        prepareRequested(): the user wants the default model prepared.
    """

    prepareRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 32, 48, 32)
        layout.addStretch(2)
        title = QLabel(self.tr("Welcome to OnnxChat"), self)
        title.setObjectName("welcomeTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        text = QLabel(self)
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setText(self.tr("Chat with language models on your own computer, offline. No "
                             "model is installed yet."))
        layout.addWidget(text)
        self.prepare_button = QPushButton(self.tr("Prepare the default model"), self)
        self.prepare_button.setObjectName("primaryButton")
        self.prepare_button.setAccessibleName(self.tr("Prepare the default model"))
        self.prepare_button.clicked.connect(self.prepareRequested)
        detail = QLabel(self)
        detail.setObjectName("hintLabel")
        detail.setWordWrap(True)
        detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addSpacing(12)
        if export_available():
            detail.setText(self.tr("SmolLM2-135M-Instruct ships with OnnxChat. Preparing it "
                                   "converts and checks it, which takes about a minute."))
            layout.addWidget(self.prepare_button, 0, Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(detail)
        else:
            self.prepare_button.hide()
            detail.setText(self.tr("Preparing a model needs the export step, which is not "
                                   "installed in this copy. Install it with:"))
            layout.addWidget(detail)
            command = QLineEdit(INSTALL_COMMAND, self)
            command.setReadOnly(True)
            command.setAlignment(Qt.AlignmentFlag.AlignCenter)
            command.setAccessibleName(self.tr("Install command"))
            command.setMaximumWidth(420)
            layout.addWidget(command, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(3)
