"""The status bar's line about the local server: its address, the model it serves and its live
request counts (the switch itself is the checkable "Local server" item of the Model menu).

It may be cut short in a narrow window (the full line is its tooltip) rather than widen the
window's minimum size."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from desktop.ui.i18n import arg
from desktop.ui.server_process import ON, STARTING, STOPPING


class ServerStatus(QLabel):
    """One line, hidden while the server is off."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(1)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._state = ""
        self._address = ""
        self._counts = ""
        self.show_state("off", "", "")

    def show_state(self, state: str, url: str, model: str) -> None:
        self._state = state
        self._address = f"{url} · {model}" if state == ON else ""
        if state != ON:
            self._counts = ""
        self._refresh()

    def show_counts(self, counts: dict[str, int]) -> None:
        self._counts = arg(self.tr("%1 running, %2 waiting, %3 answered"),
                           counts.get("running", 0), counts.get("waiting", 0),
                           counts.get("served", 0))
        self._refresh()

    def _refresh(self) -> None:
        if self._state == STARTING:
            detail = self.tr("starting…")
        elif self._state == STOPPING:
            detail = self.tr("stopping…")
        else:
            detail = " · ".join(part for part in (self._address, self._counts) if part)
        text = arg(self.tr("Local server: %1"), detail) if detail else ""
        self.setText(text)
        self.setToolTip(text)
        self.setVisible(bool(text))
