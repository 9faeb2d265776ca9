"""The installed models in a table (family, parameters, recipe, disk use), where one can be
deleted. The columns come from :mod:`desktop.model_folders`, as in ``onnxchat models``.

The model in use is not deleted: its row says so and Delete is off for it, since a loaded
model keeps its files open and a chat that is replying needs it; choosing another model first
is one step away in the model bar.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import InstalledModel, list_models
from desktop.model_folders import DeleteRefused, delete_model, model_facts, size_text
from desktop.ui.i18n import arg

# Column order of the table.
NAME, FAMILY, PARAMETERS, RECIPE, DISK = range(5)


class ModelsDialog(QDialog):
    """Lists the installed models and deletes one after a confirmation.

    Signals:
        modelDeleted(str): the folder of a model that was deleted.
    """

    modelDeleted = Signal(str)

    def __init__(self, in_use: Callable[[], list[Path]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Models"))
        self.setMinimumSize(680, 300)
        self._in_use = in_use
        self._models: list[InstalledModel] = []
        layout = QVBoxLayout(self)
        self.table = QTreeWidget(self)
        self.table.setAccessibleName(self.tr("Installed models"))
        self.table.setRootIsDecorated(False)
        self.table.setUniformRowHeights(True)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setHeaderLabels([self.tr("Model"), self.tr("Family"), self.tr("Parameters"),
                                    self.tr("Quantization"), self.tr("Disk use")])
        header = self.table.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for column in (FAMILY, PARAMETERS, RECIPE, DISK):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.currentItemChanged.connect(self._on_current_changed)
        layout.addWidget(self.table, 1)
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        row = QHBoxLayout()
        self.delete_button = QPushButton(self.tr("Delete…"), self)
        self.delete_button.setAccessibleName(self.tr("Delete the selected model"))
        self.delete_button.clicked.connect(self._on_delete_clicked)
        row.addWidget(self.delete_button)
        row.addStretch(1)
        self.close_button = QPushButton(self.tr("Close"), self)
        self.close_button.clicked.connect(self.accept)
        row.addWidget(self.close_button)
        layout.addLayout(row)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the model folders; keeps the selection where it can."""
        current = self.selected()
        self._models = list_models()
        self.table.clear()
        in_use = self._in_use_paths()
        for entry in self._models:
            facts = model_facts(entry)
            name = entry.name
            if _resolved(entry.path) in in_use:
                name = arg(self.tr("%1 (in use)"), name)
            elif entry.manifest is None:
                name = arg(self.tr("%1 (unusable)"), name)
            item = QTreeWidgetItem([name, facts.family, facts.parameters_text, facts.recipe,
                                    size_text(facts.disk.total)])
            item.setData(NAME, Qt.ItemDataRole.UserRole, str(entry.path))
            item.setToolTip(NAME, entry.problem or str(entry.path))
            for column in (PARAMETERS, DISK):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight
                                      | Qt.AlignmentFlag.AlignVCenter)
            self.table.addTopLevelItem(item)
        if not self._models:
            self.status_label.setText(self.tr("No model is installed."))
        for index in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(index)
            if current is not None and item.data(NAME, Qt.ItemDataRole.UserRole) == str(current):
                self.table.setCurrentItem(item)
                break
        else:
            if self.table.topLevelItemCount():
                self.table.setCurrentItem(self.table.topLevelItem(0))
        self._on_current_changed()

    def selected(self) -> Path | None:
        item = self.table.currentItem()
        return Path(item.data(NAME, Qt.ItemDataRole.UserRole)) if item is not None else None

    def delete(self, folder: Path) -> bool:
        """Delete ``folder`` (the user confirmed); the one-line reason when refused."""
        name = self._name(folder)
        try:
            delete_model(folder, list(self._in_use()))
        except DeleteRefused as exc:
            self.status_label.setText(str(exc))
            self.status_label.setObjectName("errorLabel")
            self._restyle_status()
            return False
        self.refresh()
        self.status_label.setText(arg(self.tr("Deleted %1."), name))
        self.modelDeleted.emit(str(folder))
        return True

    def _name(self, folder: Path) -> str:
        return next((m.name for m in self._models if m.path == folder), folder.name)

    def _in_use_paths(self) -> set[Path]:
        return {_resolved(path) for path in self._in_use()}

    def _restyle_status(self) -> None:
        self.status_label.style().unpolish(self.status_label)
        self.status_label.style().polish(self.status_label)

    @Slot()
    def _on_current_changed(self, *_: object) -> None:
        folder = self.selected()
        in_use = folder is not None and _resolved(folder) in self._in_use_paths()
        self.delete_button.setEnabled(folder is not None and not in_use)
        self.status_label.setObjectName("hintLabel")
        if folder is not None and in_use:
            self.status_label.setText(arg(self.tr("%1 is in use: choose another model first, "
                                                  "then delete it."), self._name(folder)))
        elif self._models:
            self.status_label.setText(self.tr("Deleting a model removes its folder from the "
                                              "disk; chats that used it are kept."))
        self._restyle_status()

    @Slot()
    def _on_delete_clicked(self) -> None:
        folder = self.selected()
        if folder is None:
            return
        entry = next((m for m in self._models if m.path == folder), None)
        freed = model_facts(entry).disk.freed if entry is not None else 0
        name = self._name(folder)
        box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Delete a model"),
                          arg(self.tr("Delete %1? This frees %2 on the disk."), name,
                              size_text(freed)),
                          QMessageBox.StandardButton.NoButton, self)
        box.setInformativeText(arg(self.tr("The folder %1 is removed. Chats that used the model "
                                           "are kept."), str(folder)))
        delete = box.addButton(self.tr("Delete"), QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(self.tr("Cancel"), QMessageBox.ButtonRole.RejectRole)
        box.exec()
        confirmed = box.clickedButton() is delete
        box.deleteLater()
        if confirmed:
            self.delete(folder)


def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except OSError:
        return Path(path)
