"""Settings: this conversation's system prompt and sampling, and the application's language
and theme.

Every sampling field shows its valid range and is checked as it is typed; OK stays disabled
while a value is out of range, so nothing invalid reaches the engine or the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import SamplingSettings
from desktop.engine.settings import RANGES, WHOLE
from desktop.ui.chat_settings import EDITABLE, ChatSettings, overrides_from
from desktop.ui.i18n import LANGUAGES, arg


def interval(name: str) -> str:
    """The valid range of a setting in interval notation, e.g. ``[0, 5]`` or ``(0, 1]``."""
    low, high, low_ok, high_ok = RANGES[name]
    return f"{'[' if low_ok else '('}{_bound(low)}, {_bound(high)}{']' if high_ok else ')'}"


def _number(name: str, value: object) -> str:
    """A stored value as typed in a field: no exponent, no grouping. A value no field could
    hold (a 401-digit seed, "hot" from an imported chat) is shown as it is, to be corrected."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if name in WHOLE and value.is_integer():
        return f"{int(value):d}"
    return f"{value:g}"


def _bound(value: float) -> str:
    """A range bound for people: 2^63−1 for the largest seed, digits grouped when long."""
    if value == 2**63 - 1:
        return "2^63−1"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _in_range(name: str, value: float) -> bool:
    low, high, low_ok, high_ok = RANGES[name]
    return (value > low or (low_ok and value == low)) and (value < high
                                                           or (high_ok and value == high))


class SettingsDialog(QDialog):
    """Edits one conversation's settings and the application preferences.

    After ``exec()`` returns ``Accepted``, read :meth:`chat_settings`, :attr:`language`,
    :attr:`theme` and :attr:`kv_cache`.
    """

    def __init__(self, chat: ChatSettings, model_defaults: Mapping[str, Any], model_name: str,
                 language: str, theme: str, parent: QWidget | None = None, *,
                 kv_cache: str = "fp32") -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self.setMinimumWidth(520)
        self._defaults = dict(model_defaults)
        # The sampling fields and their error lines, by setting name.
        self.fields: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        layout.addWidget(self.tabs)
        self.tabs.addTab(self._chat_tab(chat, model_name), self.tr("This chat"))
        self.tabs.addTab(self._app_tab(language, theme, kv_cache), self.tr("Application"))
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._fill(chat.sampling(self._defaults))
        self._validate()

    # --- tabs ---------------------------------------------------------------------------

    def _chat_tab(self, chat: ChatSettings, model_name: str) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        note = QLabel(page)
        note.setObjectName("hintLabel")
        note.setWordWrap(True)
        note.setText(
            arg(self.tr("These settings are saved with this conversation. Defaults come from "
                        "the model %1."), model_name) if model_name
            else self.tr("These settings are saved with this conversation. Defaults come from "
                         "the model."))
        layout.addWidget(note)
        layout.addWidget(QLabel(self.tr("System prompt"), page))
        self.system_prompt = QPlainTextEdit(page)
        self.system_prompt.setPlaceholderText(
            self.tr("Optional instructions the model sees before the conversation"))
        self.system_prompt.setAccessibleName(self.tr("System prompt"))
        self.system_prompt.setPlainText(chat.system_prompt)
        self.system_prompt.setFixedHeight(90)
        layout.addWidget(self.system_prompt)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        labels = {
            "temperature": (self.tr("Temperature"),
                            self.tr("Randomness: 0 always picks the most likely token")),
            "top_k": (self.tr("Top-k"),
                      self.tr("Sample only among the k most likely tokens; 0 turns this off")),
            "top_p": (self.tr("Top-p"),
                      self.tr("Sample among the most likely tokens that make up this share "
                              "of probability")),
            "min_p": (self.tr("Min-p"),
                      self.tr("Leave out tokens less likely than this share of the most "
                              "likely one")),
            "repetition_penalty": (self.tr("Repetition penalty"),
                                   self.tr("Above 1 makes recently used tokens less likely")),
            "max_new_tokens": (self.tr("Max new tokens"),
                               self.tr("The longest reply, in tokens")),
            "seed": (self.tr("Seed"),
                     self.tr("The same seed and settings give the same reply; empty means "
                             "random")),
        }
        metrics = self.fontMetrics()
        range_width = max(metrics.horizontalAdvance(interval(name)) for name in EDITABLE) + 8
        for name in EDITABLE:
            label, tip = labels[name]
            field = QLineEdit(page)
            field.setAccessibleName(label)
            field.setToolTip(tip)
            field.textChanged.connect(self._on_field_changed)
            if name == "seed":
                field.setPlaceholderText(self.tr("random"))
            range_label = QLabel(interval(name), page)
            range_label.setObjectName("rangeLabel")
            range_label.setMinimumWidth(range_width)
            range_label.setToolTip(arg(self.tr("Valid range: %1"), interval(name)))
            row = QHBoxLayout()
            row.addWidget(field, 1)
            row.addWidget(range_label)
            form.addRow(label, row)
            error = QLabel(page)
            error.setObjectName("fieldError")
            error.setWordWrap(True)
            error.hide()
            form.addRow("", error)
            self.fields[name] = field
            self.errors[name] = error
        layout.addLayout(form)
        reset_row = QHBoxLayout()
        reset_row.addStretch(1)
        self.reset_button = QPushButton(self.tr("Reset to defaults"), page)
        self.reset_button.setToolTip(self.tr("Use the model's default sampling settings"))
        self.reset_button.clicked.connect(self._on_reset_clicked)
        reset_row.addWidget(self.reset_button)
        layout.addLayout(reset_row)
        layout.addStretch(1)
        return page

    def _app_tab(self, language: str, theme: str, kv_cache: str) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        self.language_box = QComboBox(page)
        self.language_box.setAccessibleName(self.tr("Language"))
        self.language_box.addItem(self.tr("System default"), "system")
        for code, name in LANGUAGES.items():
            self.language_box.addItem(name, code)
        self.language_box.setCurrentIndex(max(0, self.language_box.findData(language)))
        form.addRow(self.tr("Language"), self.language_box)
        self.theme_box = QComboBox(page)
        self.theme_box.setAccessibleName(self.tr("Theme"))
        self.theme_box.addItem(self.tr("Follow the system"), "system")
        self.theme_box.addItem(self.tr("Light"), "light")
        self.theme_box.addItem(self.tr("Dark"), "dark")
        self.theme_box.setCurrentIndex(max(0, self.theme_box.findData(theme)))
        form.addRow(self.tr("Theme"), self.theme_box)
        self.kv_cache_box = QComboBox(page)
        self.kv_cache_box.setAccessibleName(self.tr("Memory for the conversation"))
        self.kv_cache_box.addItem(self.tr("Full precision (fp32)"), "fp32")
        self.kv_cache_box.addItem(self.tr("Compact (int8, on the CPU)"), "int8")
        self.kv_cache_box.setCurrentIndex(max(0, self.kv_cache_box.findData(kv_cache)))
        self.kv_cache_box.setToolTip(self.tr(
            "The model's KV cache. Compact takes a quarter of the memory and answers about "
            "twice as fast in long conversations, at a small cost in accuracy; it runs on "
            "the CPU, for models exported with it."))
        form.addRow(self.tr("Memory for the conversation"), self.kv_cache_box)
        hint = QLabel(self.tr("Compact keeps a quarter of the memory and answers about twice "
                              "as fast in long conversations, at a small cost in accuracy. "
                              "It runs on the CPU; the model reloads when you change it."), page)
        hint.setObjectName("hintLabel")
        hint.setWordWrap(True)
        form.addRow("", hint)
        return page

    # --- values -------------------------------------------------------------------------

    @property
    def language(self) -> str:
        return str(self.language_box.currentData())

    @property
    def theme(self) -> str:
        return str(self.theme_box.currentData())

    @property
    def kv_cache(self) -> str:
        return str(self.kv_cache_box.currentData())

    def _fill(self, settings: SamplingSettings) -> None:
        for name, field in self.fields.items():
            value = getattr(settings, name)
            field.setText("" if value is None else _number(name, value))

    def _parse(self, name: str) -> tuple[float | int | None, str | None]:
        """(value, None) or (None, the error to show)."""
        text = self.fields[name].text().strip().replace(",", ".")
        if name == "seed" and not text:
            return None, None
        try:
            value: float | int = int(text) if name in WHOLE else float(text)
        except (ValueError, OverflowError):
            return None, (self.tr("Enter a whole number") if name in WHOLE
                          else self.tr("Enter a number"))
        if not _in_range(name, value):
            return None, arg(self.tr("Out of range: valid values are %1"), interval(name))
        return value, None

    def _validate(self) -> bool:
        ok = True
        for name, field in self.fields.items():
            _, error = self._parse(name)
            label = self.errors[name]
            label.setText(error or "")
            label.setVisible(error is not None)
            field.setProperty("invalid", error is not None)
            field.style().unpolish(field)
            field.style().polish(field)
            ok = ok and error is None
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)
        return ok

    def sampling(self) -> SamplingSettings:
        base = SamplingSettings.from_dict(self._defaults)
        return base.with_changes(**{name: self._parse(name)[0] for name in EDITABLE})

    def chat_settings(self) -> ChatSettings:
        """The conversation's settings as entered (only call when the values are valid)."""
        return ChatSettings(self.system_prompt.toPlainText(),
                            overrides_from(self.sampling(), self._defaults))

    # --- slots --------------------------------------------------------------------------

    @Slot()
    def _on_field_changed(self) -> None:
        self._validate()

    @Slot()
    def _on_reset_clicked(self) -> None:
        self._fill(SamplingSettings.from_dict(self._defaults))
        self._validate()

    def accept(self) -> None:
        if self._validate():
            super().accept()

    def keyPressEvent(self, event) -> None:
        # Enter in a field should not close the dialog with a half-typed value.
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not self._validate():
            return
        super().keyPressEvent(event)
