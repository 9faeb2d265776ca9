"""The export dialog runs the real export step as a child process and follows its JSON
progress lines to the end: the stages with the time left, then the recipe kept and the gate's
figures, or the error line. Sources come by drag-and-drop (real drop events) or the pickers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QLineEdit, QWidget

from desktop.ui.export_dialog import (
    EXPORT_ERROR,
    INSTALL_COMMAND,
    RECIPES,
    ExportDialog,
    export_available,
    folder_name_for,
)
from desktop.ui.export_progress import ExportProgress

needs_export = pytest.mark.skipif(not export_available(),
                                  reason="the export extra is not installed")

#: The JSON lines of a real export (``python -m export FOLDER --progress-json`` of the tiny
#: Llama with varied weights, folder path shortened), where ``auto`` tried three recipes: the
#: quantize and validate stages come back twice.
RECORDED = [
    {"step": 1, "steps": 5, "stage": "load", "fraction": 0, "stage_end": 0.15,
     "message": "Loading the model folder /tmp/tiny-llama-varied-hf", "elapsed_s": 3.2},
    {"step": 2, "steps": 5, "stage": "onnx", "fraction": 0.15, "stage_end": 0.77,
     "message": "Exporting to ONNX with Optimum (the longest step)", "elapsed_s": 3.5},
    {"step": 3, "steps": 5, "stage": "quantize", "fraction": 0.77, "stage_end": 0.85,
     "message": "Quantizing: 8-bit MatMulNBits in the fused decoder graph (fast decode)",
     "elapsed_s": 3.8},
    {"step": 4, "steps": 5, "stage": "validate", "fraction": 0.85, "stage_end": 0.93,
     "message": "Validating on 1024 tokens", "elapsed_s": 3.8},
    {"step": 3, "steps": 5, "stage": "quantize", "fraction": 0.77, "stage_end": 0.85,
     "message": "Quantizing: 8-bit MatMulNBits in the fused decoder graph (fast decode) "
     "[int8-fused (LM head fp32)]", "elapsed_s": 3.9},
    {"step": 4, "steps": 5, "stage": "validate", "fraction": 0.85, "stage_end": 0.93,
     "message": "Validating on 1024 tokens", "elapsed_s": 4.0},
    {"step": 3, "steps": 5, "stage": "quantize", "fraction": 0.77, "stage_end": 0.85,
     "message": "Quantizing: fp32 weights in the fused decoder graph (exact, 4x the size of "
     "int8)", "elapsed_s": 4.1},
    {"step": 4, "steps": 5, "stage": "validate", "fraction": 0.85, "stage_end": 0.93,
     "message": "Validating on 1024 tokens", "elapsed_s": 4.1},
    {"step": 5, "steps": 5, "stage": "write", "fraction": 0.93, "stage_end": 1.0,
     "message": "Writing /tmp/dialog-models/varied", "elapsed_s": 4.3},
    {"step": 5, "steps": 5, "stage": "write", "fraction": 1.0, "stage_end": 1.0,
     "message": "Exported varied to /tmp/dialog-models/varied: perplexity 1402.27 (fp32 "
     "1402.27, ratio 1.000), top-1 agreement 1.000 over 1024 tokens", "elapsed_s": 4.3,
     "done": True},
]


def drop(target: QWidget, *paths: Path | str) -> bool:
    """Drag ``paths`` over ``target`` and drop them, as Qt delivers a drop from a file
    manager; returns whether the drag was accepted on entering."""
    mime = QMimeData()
    mime.setUrls([QUrl(p) if isinstance(p, str) else QUrl.fromLocalFile(str(p))
                  for p in paths])
    action = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(target.rect().center(), action, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QCoreApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(target.rect().center()), action, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QCoreApplication.sendEvent(target, event)
    return True


def test_progress_lines_give_stages_and_an_estimate_that_never_runs_out():
    started = 100.0
    progress = ExportProgress(started)
    progress.feed(RECORDED[0], started + 3.2)
    assert progress.stage == "load" and progress.remaining(started + 3.3) is None
    progress.feed(RECORDED[1], started + 3.5)  # 15 % done after 3.5 s: about 23 s in all
    assert progress.remaining(started + 3.5) == pytest.approx(3.5 / 0.15 - 3.5)
    # The ONNX stage runs past its share: the export cannot be past 77 % yet, so the
    # estimate grows instead of reaching zero, and the bar creeps on but stays in the stage.
    assert progress.remaining(started + 60) == pytest.approx(60 / 0.77 - 60)
    assert 0.15 < progress.fraction(started + 60) <= 0.77
    shown = [progress.fraction(started + 60)]
    for record in RECORDED[2:-1]:
        progress.feed(record, started + record["elapsed_s"] + 60)
        shown.append(progress.fraction(started + record["elapsed_s"] + 60))
        assert progress.remaining(started + record["elapsed_s"] + 60) > 0
    assert shown == sorted(shown)  # a second recipe try never moves the bar back
    assert progress.stage == "write" and progress.step == 5
    progress.feed(RECORDED[-1], started + 66)
    assert progress.done and progress.remaining(started + 66) == 0
    assert progress.fraction(started + 66) == 1.0
    progress.feed({"step": 3, "steps": 5, "error": "No recipe passed the quality gate"}, 0)
    assert progress.error == "No recipe passed the quality gate"


@needs_export
def test_the_recipe_list_is_what_the_export_accepts():
    from export.recipes import AUTO_RECIPE
    from export.recipes import RECIPES as EXPORT_RECIPES

    assert sorted(RECIPES) == sorted([AUTO_RECIPE, *EXPORT_RECIPES])


@needs_export
def test_a_dropped_gguf_file_or_model_folder_becomes_the_source(
        qtbot, tiny_llama_gguf, tiny_llama_hf, tmp_path):
    dialog = ExportDialog(preselect_default=True)
    qtbot.addWidget(dialog)
    assert drop(dialog, tiny_llama_gguf)
    assert dialog.gguf_radio.isChecked() and dialog.gguf_edit.text() == str(tiny_llama_gguf)
    assert dialog.source() == str(tiny_llama_gguf) and dialog.name_edit.text() == "tiny-llama"
    assert not dialog.drop_error.isVisibleTo(dialog)
    dialog.recipe_box.setCurrentIndex(dialog.recipe_box.findData("q4-gguf"))

    assert drop(dialog, tiny_llama_hf)
    assert dialog.folder_radio.isChecked() and dialog.source() == str(tiny_llama_hf)
    assert dialog.name_edit.text() == tiny_llama_hf.name
    q4 = dialog.recipe_box.model().item(dialog.recipe_box.findData("q4-gguf"))
    assert not q4.isEnabled()  # a folder has no GGUF blocks to carry
    assert dialog.recipe_box.currentData() == "auto"
    assert dialog.start_button.isEnabled()


@needs_export
def test_a_bad_drop_says_why_in_one_line_and_keeps_the_source(qtbot, tiny_llama_gguf,
                                                                tmp_path):
    dialog = ExportDialog(preselect_default=True)
    qtbot.addWidget(dialog)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    empty = tmp_path / "downloads"
    empty.mkdir()
    cases = [
        ((notes,), "notes.txt is not a .gguf file"),
        ((tiny_llama_gguf, notes), "2 items were dropped"),
        ((empty,), "downloads is not a model folder (it has no config.json)"),
        (("https://example.com/model.gguf",), "Only files on this computer"),
    ]
    for paths, expected in cases:
        assert drop(dialog, *paths)
        assert dialog.drop_error.isVisibleTo(dialog)
        assert dialog.drop_error.text().startswith(expected)
        assert "\n" not in dialog.drop_error.text()
        assert dialog.default_radio.isChecked() and dialog.source() == "default"
    assert drop(dialog, tiny_llama_gguf)  # a good drop clears the line
    assert not dialog.drop_error.isVisibleTo(dialog)


@needs_export
def test_a_drop_on_the_window_opens_the_dialog_with_it(qtbot, window, tiny_llama_gguf,
                                                       on_modal):
    seen: dict[str, object] = {}

    def inspect(dialog: ExportDialog) -> None:
        seen["source"] = dialog.source()
        seen["gguf"] = dialog.gguf_radio.isChecked()
        dialog.reject()

    on_modal(ExportDialog, inspect)
    assert drop(window, tiny_llama_gguf)
    qtbot.waitUntil(lambda: "source" in seen, timeout=30_000)
    assert seen == {"source": str(tiny_llama_gguf), "gguf": True}


@needs_export
def test_exporting_a_gguf_file_shows_stages_the_recipe_and_the_gate(qtbot, tiny_llama_gguf,
                                                                   tmp_path):
    dialog = ExportDialog(preselect_default=False)
    qtbot.addWidget(dialog)
    assert drop(dialog, tiny_llama_gguf)
    dialog.out_edit.setText(str(tmp_path / "models"))
    steps, stages = [], []
    dialog.progress.valueChanged.connect(steps.append)
    dialog.stageChanged.connect(stages.append)
    with qtbot.waitSignal(dialog.modelExported, timeout=240_000) as exported:
        dialog.start_button.click()
        assert dialog.running and dialog.stop_button.isVisibleTo(dialog)
        assert dialog.time_label.text().startswith("Elapsed 0:0")
    folder = Path(exported.args[0])
    assert folder == tmp_path / "models" / "tiny-llama"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert dialog.progress.value() == 1000
    assert len(set(steps)) >= 4 and steps == sorted(steps)  # step by step, never backwards
    assert stages[:3] == ["load", "onnx", "quantize"] and stages[-2:] == ["validate", "write"]
    assert dialog.stages_label.text().count("✓") == 5
    assert dialog.time_label.text().startswith("Took ")
    chosen = manifest["quantization"]["auto"]["chosen"]
    summary = dialog.summary
    assert summary.recipe_label.text().startswith(chosen)
    assert summary.choice_label.text().startswith("auto:")
    assert summary.gate_label.text().startswith("Passed: perplexity ×1.000")
    assert summary.source_label.isVisibleTo(dialog)
    source = manifest["validation"]["source"]
    if source["ran"]:
        assert summary.source_label.text().startswith(
            f"NLL per byte {source['nll_per_byte']:.4f}, llama.cpp")
    else:
        assert summary.source_label.text() == f"Not run: {source['reason']}."
    assert not dialog.report.isVisibleTo(dialog)
    dialog.details_button.click()
    assert dialog.report.isVisibleTo(dialog) and "1.000" in dialog.report.toPlainText()
    assert dialog.use_button.isVisibleTo(dialog)
    assert not dialog.running and dialog.close_button.isEnabled()
    # the name is taken now by this very export: no note says so, and Export is off
    assert not dialog.name_note.isVisibleTo(dialog) and not dialog.start_button.isEnabled()


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


def test_a_name_already_taken_is_said_before_export_and_how_to_go_on(qtbot, tmp_path):
    """The default model is usually installed already: the dialog says so under the name and
    keeps Export off until another name is typed or Replace is ticked (the export's own
    refusal speaks of command-line flags)."""
    out = tmp_path / "models"
    dialog = ExportDialog(preselect_default=True)
    qtbot.addWidget(dialog)
    name = dialog.name_edit.text()
    (out / name).mkdir(parents=True)
    dialog.out_edit.setText(str(out))
    assert dialog.name_note.isVisibleTo(dialog) and not dialog.start_button.isEnabled()
    assert dialog.name_note.text() == (
        f"A model named “{name}” is already in this folder: choose another name, or tick "
        "“Replace a model folder of the same name”.")
    dialog.overwrite_box.setChecked(True)
    assert not dialog.name_note.isVisibleTo(dialog) and dialog.start_button.isEnabled()
    dialog.overwrite_box.setChecked(False)
    assert not dialog.start_button.isEnabled()
    qtbot.keyClicks(dialog.name_edit, "-2")
    assert not dialog.name_note.isVisibleTo(dialog) and dialog.start_button.isEnabled()
    assert dialog.command()[dialog.command().index("--name") + 1] == f"{name}-2"


def test_a_name_the_export_would_refuse_is_said_before_export(qtbot, tmp_path):
    """A space or an accent in the name: the note says what a name may hold and Export stays
    off, instead of an export that starts and fails on its first line."""
    dialog = ExportDialog(preselect_default=True)
    qtbot.addWidget(dialog)
    dialog.out_edit.setText(str(tmp_path / "models"))
    assert dialog.start_button.isEnabled()
    for name in ("my model", "modèle", ".hidden", "x" * 101):
        dialog.name_edit.clear()
        for part in name.partition("è"):  # QTest types ASCII only; an input method inserts
            if part.isascii():
                qtbot.keyClicks(dialog.name_edit, part)
            else:
                dialog.name_edit.insert(part)
        assert dialog.name_edit.text() == name
        assert dialog.name_note.isVisibleTo(dialog) and not dialog.start_button.isEnabled()
        assert dialog.name_note.text() == (
            "A model's name may use up to 100 ASCII letters, digits, “.”, “_” and “-”, "
            "starting with a letter or digit.")
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "my-model")
    assert not dialog.name_note.isVisibleTo(dialog) and dialog.start_button.isEnabled()


@needs_export
def test_the_name_the_dialog_suggests_is_the_export_s_own(tmp_path):
    """For a long file name too: both cut it to the 100 characters a name may have."""
    from export.sources import resolve_source

    for stem in ("Llama-3.2-1B-Instruct-" + "x" * 128, "a" * 99 + "-" + "b" * 50,
                 "Ünïcode " * 20, "SmolLM2-135M-Instruct.Q4_1"):
        path = tmp_path / f"{stem}.gguf"
        path.write_bytes(b"GGUF")
        assert folder_name_for(str(path)) == resolve_source(str(path)).default_name()


@needs_export
def test_the_dialog_reads_the_export_s_error_line_by_the_export_s_own_name():
    from export.cli import PROG

    assert f"{PROG}: error: " == EXPORT_ERROR


def test_without_the_export_extra_the_dialog_says_how_to_install_it(qtbot, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "optimum" else real(name, *args))
    dialog = ExportDialog()
    qtbot.addWidget(dialog)
    assert not dialog.available
    assert not hasattr(dialog, "start_button")
    assert INSTALL_COMMAND in [field.text() for field in dialog.findChildren(QLineEdit)]
