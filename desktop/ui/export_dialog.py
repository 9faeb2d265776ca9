"""The export step behind a dialog: choose a source and a recipe, watch the progress bar, read
the validation report.

The app never imports the ``export`` package (it is an optional extra with torch behind it);
the dialog runs ``python -m export ... --progress-json`` as a child process and reads one JSON
object per line from its stdout (``step``, ``steps``, ``fraction``, ``message``; ``done`` at
the end, or ``error``). Stopping sends the child an interrupt, so it removes its partial folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.paths import DEFAULT_MODEL_NAME, bundle_root, model_dirs
from desktop.ui.child_process import child_process
from desktop.ui.i18n import arg

INSTALL_COMMAND = "pip install 'onnxchat[export]'"
#: The export CLI's --quant choices; auto (its default) picks q4-gguf or int8 for the source.
RECIPES = ("auto", "int8", "q4-gguf", "int8-fused", "int4", "fp32")
_NAME = re.compile(r"[^a-z0-9._-]+")
_STOP_GRACE_MS = 10_000


def export_available() -> bool:
    """Whether this installation can export (the ``export`` package and Optimum are present)."""
    return (importlib.util.find_spec("export") is not None
            and importlib.util.find_spec("optimum") is not None)


def default_output_dir() -> Path:
    """Where new models go: the first model folder that is not inside a packaged app."""
    bundle = bundle_root()
    for folder in model_dirs():
        if bundle is None or not folder.is_relative_to(bundle):
            return folder
    return model_dirs()[-1]


def folder_name_for(source: str) -> str:
    """A model folder name for a source path, like the export step's own default."""
    if source == "default":
        return DEFAULT_MODEL_NAME
    path = Path(source)
    base = path.stem if path.suffix.lower() == ".gguf" else path.name
    return _NAME.sub("-", base.lower()).strip(".-_") or "model"


class ExportDialog(QDialog):
    """Runs one export at a time in a child process.

    Signals:
        modelExported(str): the folder of the model that was written.
    """

    modelExported = Signal(str)

    def __init__(self, parent: QWidget | None = None, preselect_default: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Prepare a model"))
        self.setMinimumWidth(620)
        self._process: QProcess | None = None
        self._stdout_buffer = b""
        self._error: str | None = None
        self._target: Path | None = None
        #: The folder of the model this dialog exported ("" until one was).
        self.exported = ""
        self._name_edited = False
        self.available = export_available()
        layout = QVBoxLayout(self)
        if not self.available:
            self._build_unavailable(layout)
            return
        self._build_form(layout)
        self._build_progress(layout)
        self._build_buttons(layout)
        self.default_radio.setChecked(preselect_default)
        self._on_source_changed()

    # --- building -----------------------------------------------------------------------

    def _build_unavailable(self, layout: QVBoxLayout) -> None:
        text = QLabel(self)
        text.setWordWrap(True)
        text.setText(self.tr("The export step is not installed in this copy of OnnxChat. It "
                             "converts a model to the ONNX format the app runs, and needs "
                             "PyTorch and Optimum. Install it with:"))
        layout.addWidget(text)
        command = QLineEdit(INSTALL_COMMAND, self)
        command.setReadOnly(True)
        command.setAccessibleName(self.tr("Install command"))
        layout.addWidget(command)
        hint = QLabel(self.tr("Then open this dialog again, or run “onnxchat export default” "
                              "in a terminal."), self)
        hint.setObjectName("hintLabel")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        row = QHBoxLayout()
        row.addStretch(1)
        self.close_button = QPushButton(self.tr("Close"), self)
        self.close_button.clicked.connect(self.reject)
        row.addWidget(self.close_button)
        layout.addLayout(row)

    def _build_form(self, layout: QVBoxLayout) -> None:
        intro = QLabel(self.tr("Convert a model to an OnnxChat model folder. The result is "
                               "checked against the original before it is kept."), self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        source_box = QGroupBox(self.tr("Source"), self)
        grid = QGridLayout(source_box)
        self.source_group = QButtonGroup(self)
        self.default_radio = QRadioButton(
            self.tr("The bundled default model (SmolLM2-135M-Instruct)"), source_box)
        self.folder_radio = QRadioButton(self.tr("A Hugging Face model folder"), source_box)
        self.gguf_radio = QRadioButton(self.tr("A .gguf file"), source_box)
        self.folder_edit = QLineEdit(source_box)
        self.folder_edit.setAccessibleName(self.tr("Model folder"))
        self.folder_edit.setPlaceholderText(self.tr("Folder with config.json and weights"))
        self.gguf_edit = QLineEdit(source_box)
        self.gguf_edit.setAccessibleName(self.tr("GGUF file"))
        self.gguf_edit.setPlaceholderText(self.tr("Path to a .gguf file"))
        folder_browse = QPushButton(self.tr("Browse…"), source_box)
        folder_browse.setAccessibleName(self.tr("Choose a model folder"))
        folder_browse.clicked.connect(self._on_browse_folder_clicked)
        gguf_browse = QPushButton(self.tr("Browse…"), source_box)
        gguf_browse.setAccessibleName(self.tr("Choose a GGUF file"))
        gguf_browse.clicked.connect(self._on_browse_gguf_clicked)
        for index, radio in enumerate((self.default_radio, self.folder_radio, self.gguf_radio)):
            self.source_group.addButton(radio, index)
        grid.addWidget(self.default_radio, 0, 0, 1, 3)
        grid.addWidget(self.folder_radio, 1, 0)
        grid.addWidget(self.folder_edit, 1, 1)
        grid.addWidget(folder_browse, 1, 2)
        grid.addWidget(self.gguf_radio, 2, 0)
        grid.addWidget(self.gguf_edit, 2, 1)
        grid.addWidget(gguf_browse, 2, 2)
        self.source_group.idToggled.connect(self._on_source_changed)
        self.folder_edit.textChanged.connect(self._on_source_changed)
        self.gguf_edit.textChanged.connect(self._on_source_changed)
        layout.addWidget(source_box)

        form = QFormLayout()
        self.recipe_box = QComboBox(self)
        self.recipe_box.setAccessibleName(self.tr("Quantization"))
        descriptions = {
            "auto": self.tr("auto — the best recipe for the source (recommended)"),
            "int8": self.tr("int8 — 8-bit weights, near-lossless, loads in every runtime"),
            "q4-gguf": self.tr("q4-gguf — a GGUF file's own 4-bit weights, fused graph, fastest"),
            "int8-fused": self.tr("int8-fused — 8-bit weights in the fused graph, fast"),
            "int4": self.tr("int4 — 4-bit weights, smaller and faster, some quality loss"),
            "fp32": self.tr("fp32 — no quantization, largest"),
        }
        for recipe in RECIPES:
            self.recipe_box.addItem(descriptions[recipe], recipe)
        form.addRow(self.tr("Quantization"), self.recipe_box)
        self.name_edit = QLineEdit(self)
        self.name_edit.setAccessibleName(self.tr("Model name"))
        self.name_edit.textEdited.connect(self._on_name_edited)
        form.addRow(self.tr("Model name"), self.name_edit)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit(str(default_output_dir()), self)
        self.out_edit.setAccessibleName(self.tr("Save to folder"))
        out_browse = QPushButton(self.tr("Browse…"), self)
        out_browse.setAccessibleName(self.tr("Choose where to save"))
        out_browse.clicked.connect(self._on_browse_out_clicked)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(out_browse)
        form.addRow(self.tr("Save to"), out_row)
        self.overwrite_box = QCheckBox(self.tr("Replace a model folder of the same name"), self)
        form.addRow("", self.overwrite_box)
        layout.addLayout(form)

    def _build_progress(self, layout: QVBoxLayout) -> None:
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName(self.tr("Export progress"))
        layout.addWidget(self.progress)
        self.status_label = QLabel(self.tr("Ready. An export of the default model takes about "
                                           "a minute."), self)
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        layout.addWidget(self.error_label)
        self.details_button = QPushButton(self.tr("Show details"), self)
        self.details_button.setCheckable(True)
        self.details_button.setFlat(True)
        self.details_button.toggled.connect(self._on_details_toggled)
        layout.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setAccessibleName(self.tr("Export log"))
        self.log.setMaximumBlockCount(2000)
        self.log.setFixedHeight(120)
        self.log.hide()
        layout.addWidget(self.log)
        self.report = QTextBrowser(self)
        self.report.setAccessibleName(self.tr("Validation report"))
        self.report.setMinimumHeight(180)
        self.report.hide()
        layout.addWidget(self.report)

    def _build_buttons(self, layout: QVBoxLayout) -> None:
        row = QHBoxLayout()
        row.addStretch(1)
        self.start_button = QPushButton(self.tr("Export"), self)
        self.start_button.setObjectName("primaryButton")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton(self.tr("Stop"), self)
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.hide()
        self.use_button = QPushButton(self.tr("Use this model"), self)
        self.use_button.setObjectName("primaryButton")
        self.use_button.clicked.connect(self._on_use_clicked)
        self.use_button.hide()
        self.close_button = QPushButton(self.tr("Close"), self)
        self.close_button.clicked.connect(self.reject)
        for button in (self.stop_button, self.close_button, self.start_button, self.use_button):
            row.addWidget(button)
        layout.addLayout(row)

    # --- state --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None

    def source(self) -> str | None:
        """What to pass as SOURCE, or ``None`` while the chosen path is empty."""
        if self.default_radio.isChecked():
            return "default"
        edit = self.folder_edit if self.folder_radio.isChecked() else self.gguf_edit
        text = edit.text().strip()
        return text or None

    def command(self) -> list[str]:
        """The child process's argument list (after the Python executable)."""
        args = ["-m", "export", self.source() or "", "--quant",
                str(self.recipe_box.currentData()), "--out", self.out_edit.text().strip(),
                "--name", self.name_edit.text().strip(), "--progress-json"]
        if self.overwrite_box.isChecked():
            args.append("--overwrite")
        return args

    @Slot()
    def start(self) -> None:
        if self.running or not self._can_start():
            return
        self._error = None
        self._stdout_buffer = b""
        self._target = Path(self.out_edit.text().strip()) / self.name_edit.text().strip()
        self.error_label.hide()
        self.report.hide()
        self.use_button.hide()
        self.log.clear()
        self.progress.setValue(0)
        self.status_label.setText(self.tr("Starting…"))
        process = child_process(self, self._on_stdout_ready, self._on_stderr_ready,
                                self._on_finished, self._on_process_error)
        self._process = process
        self._set_running(True)
        process.start(sys.executable, self.command())

    @Slot()
    def stop(self) -> None:
        """Interrupt the export (it removes its partial folder); kill it if it hangs."""
        process = self._process
        if process is None:
            return
        self.status_label.setText(self.tr("Stopping…"))
        pid = process.processId()
        if pid and hasattr(signal, "SIGINT") and os.name == "posix":
            os.kill(pid, signal.SIGINT)
        else:
            process.terminate()
        QTimer.singleShot(_STOP_GRACE_MS, process.kill)

    def _can_start(self) -> bool:
        return (self.source() is not None and bool(self.name_edit.text().strip())
                and bool(self.out_edit.text().strip()))

    def _set_running(self, running: bool) -> None:
        self.start_button.setVisible(not running)
        self.stop_button.setVisible(running)
        self.close_button.setEnabled(not running)
        for widget in (self.default_radio, self.folder_radio, self.gguf_radio, self.folder_edit,
                       self.gguf_edit, self.recipe_box, self.name_edit, self.out_edit,
                       self.overwrite_box):
            widget.setEnabled(not running)
        if not running:
            self._on_source_changed()

    def reject(self) -> None:
        if self.running:
            self.stop()
            if self._process is not None:
                self._process.waitForFinished(_STOP_GRACE_MS)
        super().reject()

    def closeEvent(self, event) -> None:
        if self.running:
            self.stop()
            if self._process is not None:
                self._process.waitForFinished(_STOP_GRACE_MS)
        super().closeEvent(event)

    # --- the child process --------------------------------------------------------------

    @Slot()
    def _on_stdout_ready(self) -> None:
        if self._process is None:
            return
        self._stdout_buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._stdout_buffer = self._stdout_buffer.split(b"\n")
        for line in lines:
            self._on_progress_line(line.decode("utf-8", "replace").strip())

    def _on_progress_line(self, line: str) -> None:
        if not line:
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            self.log.appendPlainText(line)
            return
        if not isinstance(record, dict):
            return
        if "error" in record:
            self._error = str(record["error"])
            return
        fraction = record.get("fraction")
        if isinstance(fraction, (int, float)):
            self.progress.setValue(round(max(0.0, min(1.0, float(fraction))) * 1000))
        message = str(record.get("message", ""))
        if record.get("done"):
            self.status_label.setText(message)
        elif message:
            self.status_label.setText(arg(self.tr("Step %1 of %2: %3"), record.get("step", "?"),
                                          record.get("steps", "?"), message))

    @Slot()
    def _on_stderr_ready(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardError().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self.log.appendPlainText(line.rstrip())
                if line.startswith("error: ") and self._error is None:
                    self._error = line[len("error: "):]

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._on_stdout_ready()
        self._on_stderr_ready()
        self._process = None
        self._set_running(False)
        if code == 0 and status == QProcess.ExitStatus.NormalExit:
            self.progress.setValue(1000)
            self._show_report()
            return
        self.progress.setValue(0)
        if self._error is None:
            self._error = (self.tr("The export was stopped.")
                           if status == QProcess.ExitStatus.CrashExit or code == 130
                           else arg(self.tr("The export ended with exit code %1."), code))
        self.status_label.setText(self.tr("The export did not finish."))
        self.error_label.setText(self._error)
        self.error_label.show()
        self.details_button.setChecked(True)

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._process = None
            self._set_running(False)
            self.error_label.setText(arg(self.tr("The export could not start: %1"),
                                         sys.executable))
            self.error_label.show()

    def _show_report(self) -> None:
        target = self._target
        report = target / "validation_report.md" if target else None
        if report is not None and report.is_file():
            self.report.setMarkdown(report.read_text(encoding="utf-8"))
        else:
            self.report.setPlainText(self.status_label.text())
        self.report.show()
        if target is not None and (target / "manifest.json").is_file():
            self.use_button.show()
            self.exported = str(target)
            self.modelExported.emit(str(target))

    # --- slots --------------------------------------------------------------------------

    @Slot()
    def _on_source_changed(self, *_: object) -> None:
        self.folder_edit.setEnabled(self.folder_radio.isChecked() and not self.running)
        self.gguf_edit.setEnabled(self.gguf_radio.isChecked() and not self.running)
        source = self.source()
        if not self._name_edited:
            self.name_edit.setText(folder_name_for(source) if source else "")
        self.start_button.setEnabled(self._can_start())

    @Slot(str)
    def _on_name_edited(self, _text: str) -> None:
        self._name_edited = True
        self.start_button.setEnabled(self._can_start())

    @Slot()
    def _on_browse_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose a model folder"))
        if folder:
            self.folder_radio.setChecked(True)
            self.folder_edit.setText(folder)

    @Slot()
    def _on_browse_gguf_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Choose a GGUF file"), "",
                                              self.tr("GGUF models (*.gguf)"))
        if path:
            self.gguf_radio.setChecked(True)
            self.gguf_edit.setText(path)

    @Slot()
    def _on_browse_out_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose where to save"),
                                                  self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    @Slot(bool)
    def _on_details_toggled(self, shown: bool) -> None:
        self.log.setVisible(shown)
        self.details_button.setText(self.tr("Hide details") if shown
                                    else self.tr("Show details"))

    @Slot()
    def _on_use_clicked(self) -> None:
        self.accept()
