"""The strips around the chat: the model bar (model, device, busy indicator), the notice
banner, and the status bar (model, device, speed, first-token time, context meter).

Their text can carry values from anywhere (an error naming a 401-digit seed from an imported
chat): the banner shortens unbroken runs and the status bar's notice shortens itself to its
room, so no message can widen the window past the screen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPainter, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStatusBar,
    QToolButton,
    QWidget,
)

from desktop.engine import DeviceInfo, InstalledModel
from desktop.model_folders import model_facts, size_text
from desktop.ui.i18n import arg
from desktop.ui.long_text import shorten_runs

DEVICES = ("auto", "cuda", "cpu")
REASON_WIDTH = 340  # pixels of the "CUDA unavailable: …" reason shown in the status bar


class ModelBar(QWidget):
    """Model picker, device choice, busy indicator and the settings button.

    Signals:
        modelChosen(str): the folder of the model the user picked.
        deviceChosen(str): "auto", "cuda" or "cpu".
        settingsRequested(): the settings button was pressed.
    """

    modelChosen = Signal(str)
    deviceChosen = Signal(str)
    settingsRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._filling = False
        self._current: str | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(8)
        model_label = QLabel(self.tr("Model"), self)
        self.model_box = QComboBox(self)
        self.model_box.setAccessibleName(self.tr("Model"))
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_box.setMinimumWidth(220)
        self.model_box.activated.connect(self._on_model_activated)
        model_label.setBuddy(self.model_box)
        self.details_label = ElidingLabel(self)  # the whole line is its tooltip
        self.details_label.setObjectName("metaLabel")
        device_label = QLabel(self.tr("Device"), self)
        self.device_box = QComboBox(self)
        self.device_box.setAccessibleName(self.tr("Device"))
        names = {"auto": self.tr("Auto"), "cuda": "CUDA", "cpu": "CPU"}
        for device in DEVICES:
            self.device_box.addItem(names[device], device)
        self.device_box.setToolTip(self.tr("Auto uses CUDA when it works, else the CPU"))
        self.device_box.activated.connect(self._on_device_activated)
        device_label.setBuddy(self.device_box)
        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)
        self.busy.setFixedWidth(90)
        self.busy.setTextVisible(False)
        self.busy.setAccessibleName(self.tr("Loading the model"))
        self.busy_label = QLabel(self)
        self.busy_label.setObjectName("metaLabel")
        self.settings_button = QPushButton(self.tr("Settings"), self)
        self.settings_button.setToolTip(self.tr("Chat and application settings (Ctrl+,)"))
        self.settings_button.setAccessibleName(self.tr("Settings"))
        self.settings_button.clicked.connect(self.settingsRequested)
        layout.addWidget(model_label)
        layout.addWidget(self.model_box)
        layout.addWidget(self.details_label, 1)
        layout.addWidget(self.busy)
        layout.addWidget(self.busy_label)
        layout.addWidget(device_label)
        layout.addWidget(self.device_box)
        layout.addWidget(self.settings_button)
        self.set_loading(None)

    def set_models(self, models: Sequence[InstalledModel], current: str | None) -> None:
        """List ``models`` (unusable ones greyed out with their problem as tooltip)."""
        self._filling = True
        self._current = current
        self.model_box.clear()
        item_model = self.model_box.model()
        for entry in models:
            if entry.manifest is None:
                self.model_box.addItem(arg(self.tr("%1 (unusable)"), entry.name), str(entry.path))
                index = self.model_box.count() - 1
                self.model_box.setItemData(index, entry.problem or "", Qt.ItemDataRole.ToolTipRole)
                if isinstance(item_model, QStandardItemModel):
                    item_model.item(index).setEnabled(False)
                continue
            self.model_box.addItem(entry.name, str(entry.path))
            self.model_box.setItemData(self.model_box.count() - 1, self._describe(entry),
                                       Qt.ItemDataRole.ToolTipRole)
        if not models:
            self.model_box.addItem(self.tr("No model installed"), "")
        self.select(current)
        self._filling = False

    def _describe(self, entry: InstalledModel) -> str:
        manifest = entry.manifest
        assert manifest is not None
        facts = model_facts(entry)
        parts = [facts.family, facts.parameters_text, manifest.recipe,
                 size_text(facts.disk.total)]
        validation = manifest.validation
        ratio, top1 = validation.get("perplexity_ratio"), validation.get("top1_agreement")
        if isinstance(ratio, (int, float)) and isinstance(top1, (int, float)):
            parts.append(arg(self.tr("perplexity ×%1, top-1 agreement %2%"), f"{ratio:.3f}",
                             f"{top1 * 100:.1f}"))
        else:
            parts.append(self.tr("not validated"))
        if validation.get("forced"):
            parts.append(self.tr("failed validation"))
        return " · ".join(parts)

    def select(self, folder: str | None) -> None:
        """Show ``folder`` as the current model (the one in use)."""
        self._current = folder
        index = self.model_box.findData(folder) if folder else -1
        was = self._filling
        self._filling = True
        if index >= 0:
            self.model_box.setCurrentIndex(index)
        self._filling = was
        tip = self.model_box.itemData(index, Qt.ItemDataRole.ToolTipRole) if index >= 0 else ""
        self.details_label.setText(tip or "")
        self.details_label.setToolTip(tip or "")

    def set_device(self, device: str) -> None:
        self.device_box.setCurrentIndex(max(0, self.device_box.findData(device)))

    def set_loading(self, name: str | None) -> None:
        """Show the busy indicator while ``name`` loads (``None``: not loading)."""
        self.busy.setVisible(name is not None)
        self.busy_label.setVisible(name is not None)
        self.busy_label.setText(arg(self.tr("Loading %1…"), name) if name else "")

    def set_switching_enabled(self, enabled: bool) -> None:
        """Models and devices cannot change while a reply is being generated."""
        self.model_box.setEnabled(enabled)
        self.device_box.setEnabled(enabled)

    @Slot(int)
    def _on_model_activated(self, index: int) -> None:
        folder = self.model_box.itemData(index)
        if not self._filling and folder and folder != self._current:
            self.modelChosen.emit(folder)

    @Slot(int)
    def _on_device_activated(self, index: int) -> None:
        if not self._filling:
            self.deviceChosen.emit(str(self.device_box.itemData(index)))


class ElidingLabel(QLabel):
    """One line that takes the room it is given, ending with "…" when that is too little,
    instead of asking for the width of its whole text; :meth:`text` stays whole."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def paintEvent(self, event) -> None:
        rect = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                              rect.width())
        painter = QPainter(self)
        self.style().drawItemText(painter, rect, int(self.alignment()), self.palette(),
                                  self.isEnabled(), shown, self.foregroundRole())


class Banner(QFrame):
    """A one-line notice above the chat (errors, "chat deleted — Undo"), with optional action."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 8, 6)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton(self)
        self.action_button.clicked.connect(self._on_action_clicked)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip(self.tr("Dismiss"))
        self.close_button.setAccessibleName(self.tr("Dismiss"))
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(self.close_button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self._action: Callable[[], None] | None = None
        self.hide()

    def show_message(self, text: str, error: bool = False, action_text: str | None = None,
                     action: Callable[[], None] | None = None, timeout_ms: int = 0) -> None:
        self.label.setObjectName("errorLabel" if error else "")
        self.label.style().unpolish(self.label)
        self.label.style().polish(self.label)
        self.label.setText(shorten_runs(text))
        self._action = action
        self.action_button.setVisible(action is not None)
        self.action_button.setText(action_text or "")
        self.show()
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    @Slot()
    def dismiss(self) -> None:
        self._timer.stop()
        self._action = None
        self.hide()

    @Slot()
    def _on_action_clicked(self) -> None:
        action = self._action
        self.dismiss()
        if action is not None:
            action()


class StatusBar(QStatusBar):
    """Model, device, last reply's speed and first-token time, and the context meter."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.model_label = QLabel(self)
        self.device_label = QLabel(self)
        self.device_reason_label = QLabel(self)
        self.device_reason_label.setObjectName("noticeLabel")
        self.speed_label = QLabel(self)
        self.speed_label.setToolTip(self.tr("Decoding speed of the last reply"))
        self.first_token_label = QLabel(self)
        self.first_token_label.setToolTip(self.tr("Time to the first token of the last reply"))
        self.notice_label = ElidingLabel(self)
        self.notice_label.setObjectName("noticeLabel")
        self.context_meter = QProgressBar(self)
        self.context_meter.setObjectName("contextMeter")
        self.context_meter.setFixedWidth(190)
        self.context_meter.setAccessibleName(self.tr("Context used"))
        self.context_meter.setToolTip(
            self.tr("Tokens of the conversation plus the space kept for the reply, out of the "
                    "model's context"))
        self.addWidget(self.model_label)
        self.addWidget(self.device_label)
        self.addWidget(self.device_reason_label)
        self.addWidget(self.notice_label, 1)
        self.addPermanentWidget(self.speed_label)
        self.addPermanentWidget(self.first_token_label)
        self.addPermanentWidget(self.context_meter)
        self.set_model(None)
        self.set_device(None)
        self.set_reply_figures(None, None)
        self.set_context(0, 0)

    def set_model(self, name: str | None) -> None:
        self.model_label.setText(arg(self.tr("Model: %1"), name) if name
                                 else self.tr("No model loaded"))

    def set_device(self, device: DeviceInfo | None) -> None:
        """What really runs the model and, when an unused GPU is there, why (elided, full as
        tip)."""
        reason = device.reason if device and device.worth_telling else None
        self.device_label.setText(
            arg(self.tr("Device: %1"), "CUDA" if device.used == "cuda" else "CPU")
            if device else "")
        metrics = self.device_reason_label.fontMetrics()
        self.device_reason_label.setText(
            metrics.elidedText(reason, Qt.TextElideMode.ElideRight, REASON_WIDTH)
            if reason else "")
        self.device_reason_label.setToolTip(reason or "")
        self.device_reason_label.setVisible(bool(reason))

    def set_reply_figures(self, tokens_per_s: float | None, first_token_s: float | None) -> None:
        self.speed_label.setText(arg(self.tr("%1 tokens/s"), f"{tokens_per_s:.1f}")
                                 if tokens_per_s else self.tr("— tokens/s"))
        self.first_token_label.setText(
            arg(self.tr("first token %1 ms"), f"{first_token_s * 1000:.0f}")
            if first_token_s is not None else self.tr("first token —"))

    def set_context(self, used: int, total: int, overflow: bool = False) -> None:
        self.context_meter.setRange(0, max(1, total))
        self.context_meter.setValue(min(used, total))
        if total:
            self.context_meter.setFormat(arg(self.tr("Context %1 / %2"), f"{used:,}",
                                             f"{total:,}"))
        else:
            self.context_meter.setFormat(self.tr("Context —"))
        if self.context_meter.property("overflow") != overflow:
            self.context_meter.setProperty("overflow", overflow)
            # a dynamic property's style rule applies once the widget is polished again
            self.context_meter.style().unpolish(self.context_meter)
            self.context_meter.style().polish(self.context_meter)

    def set_notice(self, text: str) -> None:
        self.notice_label.setText(text)
        self.notice_label.setToolTip(shorten_runs(text))
