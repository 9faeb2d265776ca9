"""Model picking in the window: a broken model folder is reported and the previous model keeps
working; with no model at all the window offers to prepare the default one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from model_copies import without_int8_graph
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import desktop.paths
from desktop.engine.model import FUSED_FP32_ON_CUDA
from desktop.engine.runtime import DeviceInfo, nvidia_gpu_present
from desktop.ui.app import Application
from desktop.ui.bars import StatusBar
from desktop.ui.export_dialog import ExportDialog, export_available
from desktop.ui.server_process import LocalServer
from desktop.ui.settings_dialog import SettingsDialog


def broken_copy(default_model: Path, models_dir: Path) -> Path:
    """The default model's folder with its ONNX file cut short (a torn download)."""
    folder = models_dir / "broken-model"
    shutil.copytree(default_model, folder, ignore=shutil.ignore_patterns("*.onnx", "*.onnx_data"))
    source = default_model / "onnx" / "model.onnx"
    (folder / "onnx" / "model.onnx").write_bytes(source.read_bytes()[:4096])
    return folder


def test_a_model_that_fails_to_load_leaves_the_previous_one_in_use(
        qtbot, window, send, default_model, tmp_path, monkeypatch):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    broken = broken_copy(default_model, models_dir)
    monkeypatch.setenv("ONNXCHAT_MODELS_DIR", str(models_dir))
    window.refresh_models()
    assert window.model_bar.model_box.findData(str(broken)) >= 0
    previous = window.controller.engine
    with qtbot.waitSignal(window.controller.modelLoadFailed, timeout=60_000) as failed:
        window.model_bar.modelChosen.emit(str(broken))
        assert window.model_bar.busy.isVisible()
    assert "model.onnx" in failed.args[0]
    assert window.banner.isVisible()
    assert "could not be loaded" in window.banner.label.text()
    assert not window.model_bar.busy.isVisible()
    assert window.controller.engine is previous
    assert window.model_bar.model_box.currentData() == str(default_model)
    assert send(window, "Hello!").outcome == "finished"


def test_without_any_model_the_window_offers_the_default(qtbot, qapp, tmp_path, monkeypatch):
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("ONNXCHAT_MODELS_DIR", str(empty))
    monkeypatch.setattr(desktop.paths, "checkout_root", lambda: None)
    application = Application(tmp_path / "data")
    try:
        window = application.start()
        assert window.pages.currentWidget() is window.welcome
        assert window.controller.engine is None and window.controller.loading is None
        seen = {}

        def inspect_dialog() -> None:
            dialog = QApplication.activeModalWidget()
            seen["dialog"] = type(dialog)
            if isinstance(dialog, ExportDialog):
                seen["available"] = dialog.available
                if dialog.available:
                    seen["default"] = dialog.default_radio.isChecked()
                    seen["command"] = dialog.command()
                    seen["progress"] = dialog.progress.isVisibleTo(dialog)
            dialog.reject()

        QTimer.singleShot(0, inspect_dialog)
        if export_available():
            window.welcome.prepare_button.click()
        else:
            window.open_export_dialog()
        assert seen["dialog"] is ExportDialog
        if seen["available"]:
            assert seen["default"] and seen["progress"]
            command = seen["command"]
            assert command[:3] == ["-m", "export", "default"]
            assert "--progress-json" in command
            assert command[command.index("--out") + 1] == str(empty)
    finally:
        application.window.close()
        application.shutdown()


def test_the_device_choice_reloads_the_model_and_shows_what_runs(qtbot, window):
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=60_000):
        window.model_bar.device_box.setCurrentIndex(window.model_bar.device_box.findData("cpu"))
        window.model_bar.device_box.activated.emit(window.model_bar.device_box.currentIndex())
    assert window.status.device_label.text() == "Device: CPU"
    assert not window.status.device_reason_label.isVisibleTo(window.status)
    assert window.prefs.device == "cpu"
    cuda = window.model_bar.device_box.findData("cuda")
    window.model_bar.device_box.setCurrentIndex(cuda)
    window.model_bar.device_box.activated.emit(cuda)
    assert window.controller.loading is not None
    qtbot.waitUntil(lambda: window.controller.loading is None, timeout=60_000)
    engine = window.controller.engine
    if engine.model.device.used == "cuda":
        assert window.status.device_label.text() == "Device: CUDA"
    else:  # no usable CUDA here: the reason is shown and the CPU model stays in use
        assert "CUDA" in window.banner.label.text()
        assert window.model_bar.device_box.currentData() == "cpu"
        assert window.prefs.device == "cpu"


def test_the_status_bar_gives_the_cuda_reason_only_beside_a_gpu(qtbot):
    # Issue #13: "CUDA not used …" is noise on a machine without any GPU.
    bar = StatusBar()
    qtbot.addWidget(bar)
    bar.set_device(DeviceInfo("auto", "cpu", FUSED_FP32_ON_CUDA, ("CPUExecutionProvider",)))
    assert bar.device_label.text() == "Device: CPU"
    assert bar.device_reason_label.isVisibleTo(bar) is nvidia_gpu_present()


def test_the_compact_cache_setting_reloads_the_model_with_the_int8_cache(qtbot, window,
                                                                          on_modal):
    def choose_int8(dialog: SettingsDialog) -> None:
        box = dialog.kv_cache_box
        assert [box.itemData(i) for i in range(box.count())] == ["fp32", "int8"]
        assert box.currentData() == "fp32"
        box.setCurrentIndex(box.findData("int8"))
        dialog.accept()

    on_modal(SettingsDialog, choose_int8)
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=60_000):
        window.open_settings()
    model = window.controller.engine.model
    assert model.graph == "onnx/model_int8kv.onnx"
    assert model.decoder.kv_dtype == np.int8
    assert window.prefs.kv_cache == "int8"
    assert not window.banner.isVisibleTo(window)
    # the window's server would follow the same cache
    assert LocalServer.arguments(model.manifest.folder, "auto", 0, False, "int8")[4:6] == [
        "--kv-cache", "int8"]


def test_a_model_without_the_int8_cache_loads_with_fp32_and_says_why(qtbot, window,
                                                                      default_model, tmp_path):
    folder = without_int8_graph(default_model, tmp_path / "older-export")
    window.prefs.kv_cache = "int8"
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=60_000):
        window._on_model_chosen(str(folder))
    assert window.controller.engine.model.graph == "onnx/model.onnx"
    assert window.banner.label.text() == (
        "The int8 KV cache is not used for smollm2-135m-instruct: it was exported before "
        "OnnxChat made "
        "one; export it again.")
