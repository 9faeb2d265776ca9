"""The export step behind a dialog: choose or drop a source, pick a recipe, watch the stages
with the time left, read which recipe was kept and the quality gate's figures.

The app never imports the ``export`` package (it is an optional extra with torch behind it);
the dialog runs ``python -m export ... --progress-json`` as a child process and reads one JSON
object per line from its stdout (``step``, ``steps``, ``stage``, ``fraction``, ``stage_end``,
``message``; ``done`` at the end, or ``error``), then the finished folder's manifest.json.
Stopping sends the child an interrupt, so it removes its partial folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QStandardItemModel
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

from desktop.engine.manifest import read_manifest
from desktop.errors import ModelError
from desktop.paths import DEFAULT_MODEL_NAME, bundle_root, model_dirs
from desktop.ui import model_drop
from desktop.ui.child_process import child_process
from desktop.ui.export_progress import STAGES, ExportProgress
from desktop.ui.export_result import ExportSummary
from desktop.ui.i18n import arg

INSTALL_COMMAND = "pip install 'onnxchat[export]'"
# How the export run as ``python -m export`` starts its error line, on standard error.
EXPORT_ERROR = "python -m export: error: "
# The export CLI's --quant choices, in the order ``auto`` tries them (models/README.md).
RECIPES = ("auto", "q4-gguf", "int8-fused", "fp32-fused", "int8", "int4", "fp32")
# Recipes that read a GGUF file's own blocks (the bundled default model is a GGUF too).
GGUF_ONLY = frozenset({"q4-gguf"})
_NAME = re.compile(r"[^a-z0-9._-]+")
# A name the export takes: a folder name on every system (models/README.md, "Layout").
_VALID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_STOP_GRACE_MS = 10_000
_TICK_MS = 1000


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


def duration_text(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:09``: elapsed time as a clock shows it."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def folder_name_for(source: str) -> str:
    """A model folder name for a source path, like the export step's own default."""
    if source == "default":
        return DEFAULT_MODEL_NAME
    path = Path(source)
    base = path.stem if path.suffix.lower() == ".gguf" else path.name
    return _NAME.sub("-", base.lower()).strip(".-_")[:100].rstrip(".-_") or "model"


class ExportDialog(QDialog):
    """Runs one export at a time in a child process.

    Signals:
        modelExported(str): the folder of the model that was written.
        stageChanged(str): the export entered a stage ("load", "onnx", "quantize",
            "validate", "write"; again when ``auto`` tries another recipe).
    """

    modelExported = Signal(str)
    stageChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None, preselect_default: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Prepare a model"))
        self.setMinimumWidth(660)
        self._process: QProcess | None = None
        self._error: str | None = None
        self._target: Path | None = None
        # The folder the last export wrote (its name is taken now, by this dialog's doing).
        self._written: Path | None = None
        self._progress: ExportProgress | None = None
        self._tick = QTimer(self)
        self._tick.setInterval(_TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        # The folder of the model this dialog exported ("" until one was).
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
        self.setAcceptDrops(True)

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
        drop_hint = QLabel(self.tr("Or drop a .gguf file or a model folder on this window."),
                           source_box)
        drop_hint.setObjectName("hintLabel")
        grid.addWidget(drop_hint, 3, 0, 1, 3)
        self.drop_error = QLabel(source_box)
        self.drop_error.setObjectName("errorLabel")
        self.drop_error.setWordWrap(True)
        self.drop_error.hide()
        grid.addWidget(self.drop_error, 4, 0, 1, 3)
        self.source_group.idToggled.connect(self._on_source_changed)
        self.folder_edit.textChanged.connect(self._on_source_changed)
        self.gguf_edit.textChanged.connect(self._on_source_changed)
        layout.addWidget(source_box)

        form = QFormLayout()
        self.recipe_box = QComboBox(self)
        self.recipe_box.setAccessibleName(self.tr("Quantization"))
        # The descriptions are long: the list shows them whole, the closed box elides them.
        self.recipe_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recipe_box.setMinimumContentsLength(40)
        descriptions = {
            "auto": self.tr("auto — the fastest recipe that passes the quality gate "
                            "(recommended)"),
            "q4-gguf": self.tr("q4-gguf — a GGUF file's own quantized blocks, carried exactly "
                               "(4-bit types as 4-bit, wider ones as 8-bit), fused graph, "
                               "fastest"),
            "int8-fused": self.tr("int8-fused — 8-bit weights in the fused graph, fast"),
            "fp32-fused": self.tr("fp32-fused — full-precision weights in the fused graph, "
                                  "exact, 4× the size of int8"),
            "int8": self.tr("int8 — 8-bit weights, near-lossless, loads in every runtime"),
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
        self.name_note = QLabel(self)
        self.name_note.setObjectName("errorLabel")
        self.name_note.setWordWrap(True)
        self.name_note.hide()
        form.addRow("", self.name_note)
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
        self.overwrite_box.toggled.connect(self._on_source_changed)
        self.out_edit.textChanged.connect(self._on_source_changed)
        form.addRow("", self.overwrite_box)
        layout.addLayout(form)

    def _build_progress(self, layout: QVBoxLayout) -> None:
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName(self.tr("Export progress"))
        layout.addWidget(self.progress)
        self.stages_label = QLabel(self)
        self.stages_label.setTextFormat(Qt.TextFormat.RichText)
        self.stages_label.setAccessibleName(self.tr("Export stages"))
        self.stages_label.hide()
        layout.addWidget(self.stages_label)
        self.status_label = QLabel(self.tr("Ready. An export of the default model takes about "
                                           "a minute."), self)
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.time_label = QLabel(self)
        self.time_label.setObjectName("metaLabel")
        self.time_label.hide()
        layout.addWidget(self.time_label)
        self.summary = ExportSummary(self)
        self.summary.hide()
        layout.addWidget(self.summary)
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
        layout.addStretch(1)

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
        self._target = Path(self.out_edit.text().strip()) / self.name_edit.text().strip()
        self.error_label.hide()
        self.drop_error.hide()
        self.summary.hide()
        self.report.hide()
        self.use_button.hide()
        self.details_button.setChecked(False)
        self.report.clear()
        self.log.clear()
        self.progress.setValue(0)
        self.status_label.setText(self.tr("Starting…"))
        self._progress = ExportProgress(time.monotonic())
        self._show_stages()
        self._show_time()
        process = child_process(self, self._on_progress_line, self._on_stderr_line,
                                self._on_finished, self._on_process_error)
        self._process = process
        self._set_running(True)
        self._tick.start()
        self._grow_to_fit()
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

    def _taken_name(self) -> bool:
        """Whether a folder of the chosen name is already where the model would go."""
        name, out = self.name_edit.text().strip(), self.out_edit.text().strip()
        return bool(name and out) and (Path(out).expanduser() / name).exists()

    def _can_start(self) -> bool:
        return (self.source() is not None and self._valid_name()
                and bool(self.out_edit.text().strip())
                and (self.overwrite_box.isChecked() or not self._taken_name()))

    def _valid_name(self) -> bool:
        return _VALID_NAME.fullmatch(self.name_edit.text().strip()) is not None

    def _update_name_note(self) -> None:
        """Say before Export that the name cannot be a model's or is taken, and how to go on."""
        name = self.name_edit.text().strip()
        here = Path(self.out_edit.text().strip()) / name
        invalid = bool(name) and not self._valid_name() and not self.running
        taken = (not invalid and self._taken_name() and not self.overwrite_box.isChecked()
                 and not self.running and here != self._written)
        if invalid:
            self.name_note.setText(self.tr(
                "A model's name may use up to 100 ASCII letters, digits, “.”, “_” and “-”, "
                "starting with a letter or digit."))
        elif taken:
            self.name_note.setText(arg(self.tr(
                "A model named “%1” is already in this folder: choose another name, or tick "
                "“Replace a model folder of the same name”."), name))
        self.name_note.setVisible(invalid or taken)

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

    def _on_progress_line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            self.log.appendPlainText(line)
            return
        if not isinstance(record, dict) or self._progress is None:
            return
        progress = self._progress
        stage = progress.stage
        progress.feed(record, time.monotonic())
        if progress.stage is not None and progress.stage != stage:
            self.stageChanged.emit(progress.stage)
        if progress.error is not None:
            self._error = progress.error
            return
        if progress.done:
            self.status_label.setText(arg(self.tr("Done: the model is in %1."), self._target))
        elif progress.message:
            self.status_label.setText(arg(self.tr("Step %1 of %2: %3"), progress.step,
                                          progress.steps, progress.message))
        self._show_stages()
        self._show_time()

    def _stage_names(self) -> dict[str, str]:
        return {"load": self.tr("Load"), "onnx": self.tr("Convert to ONNX"),
                "quantize": self.tr("Quantize"), "validate": self.tr("Check quality"),
                "write": self.tr("Write")}

    def _show_stages(self) -> None:
        """The stages in a row: finished ones ticked, the current one in bold."""
        progress = self._progress
        if progress is None:
            self.stages_label.hide()
            return
        current = STAGES.index(progress.stage) if progress.stage in STAGES else -1
        names = self._stage_names()
        parts = []
        for index, stage in enumerate(STAGES):
            name = names[stage].replace("&", "&amp;")
            if progress.done or index < current:
                parts.append(f"✓ {name}")
            elif index == current:
                parts.append(f"<b>{name}</b>")
            else:
                parts.append(name)
        self.stages_label.setText(" &nbsp;›&nbsp; ".join(parts))
        self.stages_label.show()

    def _show_time(self) -> None:
        progress = self._progress
        if progress is None:
            self.time_label.hide()
            return
        now = time.monotonic()
        elapsed = duration_text(progress.elapsed(now))
        remaining = progress.remaining(now)
        if progress.done:
            text = arg(self.tr("Took %1"), elapsed)
        elif remaining is None:
            text = arg(self.tr("Elapsed %1 · estimating the time left…"), elapsed)
        elif remaining < 60:
            text = arg(self.tr("Elapsed %1 · about %2 s left"), elapsed,
                       max(5, round(remaining / 5) * 5))
        else:
            text = arg(self.tr("Elapsed %1 · about %2 min left"), elapsed,
                       round(remaining / 60))
        self.time_label.setText(text)
        self.time_label.show()
        self.progress.setValue(round(progress.fraction(now) * 1000))

    @Slot()
    def _on_tick(self) -> None:
        if self.running:
            self._show_time()

    def _on_stderr_line(self, line: str) -> None:
        if line.strip():
            self.log.appendPlainText(line.rstrip())
            if line.startswith(EXPORT_ERROR) and self._error is None:
                self._error = line[len(EXPORT_ERROR):]

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._process = None
        self._tick.stop()
        done = code == 0 and status == QProcess.ExitStatus.NormalExit
        self._written = self._target if done else None
        self._set_running(False)
        if done:
            self.progress.setValue(1000)
            self._show_report()
            return
        self.progress.setValue(0)
        self.time_label.hide()
        if self._error is None:
            self._error = (self.tr("The export was stopped.")
                           if status == QProcess.ExitStatus.CrashExit or code == 130
                           else arg(self.tr("The export ended with exit code %1."), code))
        self.status_label.setText(self.tr("The export did not finish."))
        self.error_label.setText(self._error)
        self.error_label.show()
        self.details_button.setChecked(True)
        self._grow_to_fit()

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._process = None
            self._tick.stop()
            self._set_running(False)
            self.error_label.setText(arg(self.tr("The export could not start: %1"),
                                         sys.executable))
            self.error_label.show()

    def _show_report(self) -> None:
        target = self._target
        if target is None or not self.show_result(target):
            self.report.setPlainText(self.status_label.text())
            self.report.show()
            return
        self.use_button.show()
        self.exported = str(target)
        self.modelExported.emit(str(target))

    def show_result(self, folder: Path) -> bool:
        """Show what the export of ``folder`` kept and why, from its manifest.json, with its
        validation report under the details; False when the folder has no readable manifest."""
        try:
            manifest = read_manifest(folder)
        except ModelError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return False
        self.summary.show_manifest(manifest)
        self.summary.show()
        self._grow_to_fit()
        report = folder / "validation_report.md"
        if report.is_file():
            self.report.setMarkdown(report.read_text(encoding="utf-8"))
        else:
            self.report.setPlainText(self.status_label.text())
        self._show_details(self.details_button.isChecked())
        return True

    # --- dropping a source --------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.available and not self.running and model_drop.has_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        if not self.available or self.running:
            event.ignore()
            return
        self.apply_drop(event.mimeData().urls())
        event.acceptProposedAction()

    def apply_drop(self, urls: list[QUrl]) -> bool:
        """Take a dropped ``.gguf`` file or model folder as the source; anything else leaves
        the source as it was and says why in one line. True when the drop was taken."""
        drop = model_drop.classify_urls(urls)
        if drop.usable and drop.path is not None:
            self.drop_error.hide()
            self.use_source(drop.kind, drop.path)
            return True
        self.drop_error.setText(self._drop_problem(drop))
        self.drop_error.show()
        self._grow_to_fit()
        return False

    def use_source(self, kind: str, path: Path) -> None:
        """Choose ``path`` as a GGUF file (``model_drop.GGUF``) or a model folder."""
        radio, edit = ((self.gguf_radio, self.gguf_edit) if kind == model_drop.GGUF
                       else (self.folder_radio, self.folder_edit))
        radio.setChecked(True)
        edit.setText(str(path))

    def _drop_problem(self, drop: model_drop.Drop) -> str:
        name = drop.path.name if drop.path is not None else ""
        if drop.kind == model_drop.SEVERAL:
            return arg(self.tr("%1 items were dropped: drop one .gguf file or one model "
                               "folder."), drop.count)
        if drop.kind == model_drop.NOT_LOCAL:
            return self.tr("Only files on this computer can be exported: download the model "
                           "first, then drop the file or folder.")
        if drop.kind == model_drop.MISSING:
            return arg(self.tr("%1 cannot be found: drop a .gguf file or a model folder."),
                       name)
        if drop.kind == model_drop.ALREADY_MODEL:
            return arg(self.tr("%1 is already an OnnxChat model folder: put it in a models "
                               "folder to use it, no export needed."), name)
        if drop.kind == model_drop.NOT_MODEL_FOLDER:
            return arg(self.tr("%1 is not a model folder (it has no config.json): drop the "
                               "folder with config.json and the weights, or a .gguf file."),
                       name)
        return arg(self.tr("%1 is not a .gguf file: drop a .gguf file or a Hugging Face model "
                           "folder."), name)

    # --- slots --------------------------------------------------------------------------

    @Slot()
    def _on_source_changed(self, *_: object) -> None:
        self.folder_edit.setEnabled(self.folder_radio.isChecked() and not self.running)
        self.gguf_edit.setEnabled(self.gguf_radio.isChecked() and not self.running)
        source = self.source()
        if not self._name_edited:
            self.name_edit.setText(folder_name_for(source) if source else "")
        self._enable_recipes(not self.folder_radio.isChecked())
        self._update_name_note()
        self.start_button.setEnabled(self._can_start())

    def _enable_recipes(self, gguf_source: bool) -> None:
        """A folder has no GGUF blocks to carry: those recipes are greyed out for it."""
        items = self.recipe_box.model()
        for index in range(self.recipe_box.count()):
            if self.recipe_box.itemData(index) in GGUF_ONLY and isinstance(items,
                                                                           QStandardItemModel):
                items.item(index).setEnabled(gguf_source)
        if not gguf_source and self.recipe_box.currentData() in GGUF_ONLY:
            self.recipe_box.setCurrentIndex(self.recipe_box.findData("auto"))

    @Slot(str)
    def _on_name_edited(self, _text: str) -> None:
        self._name_edited = True
        self._update_name_note()
        self.start_button.setEnabled(self._can_start())

    @Slot()
    def _on_browse_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose a model folder"))
        if folder:
            self.drop_error.hide()
            self.use_source(model_drop.FOLDER, Path(folder))

    @Slot()
    def _on_browse_gguf_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Choose a GGUF file"), "",
                                              self.tr("GGUF models (*.gguf)"))
        if path:
            self.drop_error.hide()
            self.use_source(model_drop.GGUF, Path(path))

    @Slot()
    def _on_browse_out_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose where to save"),
                                                  self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    @Slot(bool)
    def _on_details_toggled(self, shown: bool) -> None:
        self._show_details(shown)

    def _show_details(self, shown: bool) -> None:
        """The log, and the full validation report once there is one."""
        self.log.setVisible(shown)
        self.report.setVisible(shown and not self.report.document().isEmpty())
        self.details_button.setText(self.tr("Hide details") if shown
                                    else self.tr("Show details"))
        self._grow_to_fit()

    def _grow_to_fit(self) -> None:
        """Make room for what was just shown (wrapped lines included); never shrink a dialog
        the user made larger."""
        layout = self.layout()
        layout.activate()
        width = max(self.width(), self.sizeHint().width())
        height = (layout.totalHeightForWidth(width) if layout.hasHeightForWidth()
                  else self.sizeHint().height())
        self.resize(width, max(self.height(), height))

    @Slot()
    def _on_use_clicked(self) -> None:
        self.accept()
