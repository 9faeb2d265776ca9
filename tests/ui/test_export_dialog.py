"""The export dialog runs the real export step as a child process and follows its JSON
progress lines to the end: a validation report, or the error line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLineEdit

from desktop.ui.export_dialog import INSTALL_COMMAND, ExportDialog, export_available

needs_export = pytest.mark.skipif(not export_available(),
                                  reason="the export extra is not installed")


@needs_export
def test_exporting_a_model_folder_shows_progress_and_the_report(qtbot, tiny_llama_hf, tmp_path):
    dialog = ExportDialog(preselect_default=False)
    qtbot.addWidget(dialog)
    dialog.folder_radio.setChecked(True)
    dialog.folder_edit.setText(str(tiny_llama_hf))
    dialog.recipe_box.setCurrentIndex(dialog.recipe_box.findData("fp32"))
    dialog.name_edit.setText("tiny-llama")
    dialog.out_edit.setText(str(tmp_path / "models"))
    steps = []
    dialog.progress.valueChanged.connect(steps.append)
    with qtbot.waitSignal(dialog.modelExported, timeout=240_000) as exported:
        dialog.start_button.click()
        assert dialog.running and dialog.stop_button.isVisibleTo(dialog)
    folder = Path(exported.args[0])
    assert folder == tmp_path / "models" / "tiny-llama"
    assert (folder / "manifest.json").is_file()
    assert dialog.progress.value() == 1000
    assert len(set(steps)) >= 4 and steps == sorted(steps)  # step by step, never backwards
    assert dialog.report.isVisibleTo(dialog)
    assert "1.000" in dialog.report.toPlainText()  # the fp32 export agrees with its source
    assert dialog.use_button.isVisibleTo(dialog)
    assert not dialog.running and dialog.close_button.isEnabled()


@needs_export
def test_a_failing_export_shows_its_error_line(qtbot, tmp_path):
    dialog = ExportDialog(preselect_default=False)
    qtbot.addWidget(dialog)
    dialog.folder_radio.setChecked(True)
    dialog.folder_edit.setText(str(tmp_path / "no-such-model"))
    dialog.out_edit.setText(str(tmp_path / "models"))
    assert dialog.name_edit.text() == "no-such-model"
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    assert dialog.error_label.isVisibleTo(dialog)
    assert "no-such-model" in dialog.error_label.text()
    assert dialog.progress.value() == 0
    assert dialog.start_button.isVisibleTo(dialog) and dialog.start_button.isEnabled()
    assert not (tmp_path / "models" / "no-such-model").exists()


def test_without_the_export_extra_the_dialog_says_how_to_install_it(qtbot, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "optimum" else real(name, *args))
    dialog = ExportDialog()
    qtbot.addWidget(dialog)
    assert not dialog.available
    assert not hasattr(dialog, "start_button")
    assert INSTALL_COMMAND in [field.text() for field in dialog.findChildren(QLineEdit)]
