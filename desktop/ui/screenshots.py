"""``python -m desktop.ui.screenshots --out DIR``: pictures of the window's main states.

Renders offscreen with real content: the replies are the default model's own (greedy, so
the pictures are the same from run to run). Used for the README and to review the look after
changes; ``make screenshots`` runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

SIZE = (1180, 780)
CHAT = [
    ("Make a Markdown table of three planets and their number of moons.", 80),
    ("Write a Python function that checks whether a number is prime, with a short "
     "explanation.", 150),
]
STREAMING_PROMPT = "Give me three tips for learning a new language, as a numbered list with " \
                   "**bold** keywords."
CHINESE_PROMPT = "你好！"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.ui.screenshots",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    parser.add_argument("--model", help="model name or folder (default: the default model)")
    args = parser.parse_args(argv)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import qInstallMessageHandler

    def quiet(mode, context, message: str) -> None:
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onnxchat-shots-") as tmp:
        shots = Shots(args.out, Path(tmp), args.model)
        shots.first_run()
        shots.main_states()
    for path in sorted(args.out.glob("*.png")):
        print(path)
    return 0


class Shots:
    """Drives one application through the states worth a picture."""

    def __init__(self, out: Path, tmp: Path, model: str | None) -> None:
        self.out = out
        self.tmp = tmp
        self.model = model

    def save(self, widget, name: str) -> None:
        from PySide6.QtWidgets import QApplication

        for _ in range(5):
            QApplication.processEvents()
        widget.grab().save(str(self.out / f"{name}.png"))

    def first_run(self) -> None:
        """The window of an installed copy that has no model yet."""
        import desktop.paths
        from desktop.ui.app import Application

        saved_root, saved_env = desktop.paths.checkout_root, os.environ.get("ONNXCHAT_MODELS_DIR")
        empty = self.tmp / "no-models"
        empty.mkdir()
        os.environ["ONNXCHAT_MODELS_DIR"] = str(empty)
        desktop.paths.checkout_root = lambda: None
        try:
            app = Application(self.tmp / "first-run")
            app.prefs.language = "en"
            app.translations.use("en")
            window = app.start(show=True)
            window.resize(*SIZE)
            self.save(window, "01-first-run")
            window.close()
        finally:
            desktop.paths.checkout_root = saved_root
            if saved_env is None:
                os.environ.pop("ONNXCHAT_MODELS_DIR", None)
            else:
                os.environ["ONNXCHAT_MODELS_DIR"] = saved_env

    def main_states(self) -> None:
        from desktop.engine import resolve_model
        from desktop.ui.app import Application
        from desktop.ui.chat_settings import ChatSettings
        from desktop.ui.export_dialog import ExportDialog
        from desktop.ui.models_dialog import ModelsDialog
        from desktop.ui.settings_dialog import SettingsDialog

        data = self.tmp / "data"
        app = Application(data)
        app.set_language("en")
        app.set_theme("light")
        window = app.start(str(resolve_model(self.model)))
        window.resize(*SIZE)
        self._wait_for_model(app)

        for prompt, tokens in CHAT:
            window.apply_chat_settings(ChatSettings(overrides={"temperature": 0.0,
                                                               "max_new_tokens": tokens}))
            self._send(app, prompt)
        chat_id = window.current_id
        window.view.scroll_to_bottom()
        self.save(window, "02-chat-markdown-code")

        window.new_chat()
        window.apply_chat_settings(ChatSettings(overrides={"temperature": 0.0,
                                                           "max_new_tokens": 200}))
        self._send(app, STREAMING_PROMPT, stop_after=lambda text: len(text) > 220,
                   before_stop=lambda: self.save(window, "03-generating"))

        window.open_conversation(chat_id)
        settings = SettingsDialog(window.chat_settings(), app.controller.model_defaults(),
                                  app.controller.engine.model.name, "en", "light", window)
        settings.fields["temperature"].setText("7")
        settings.show()
        self.save(settings, "04-settings")
        settings.tabs.setCurrentIndex(1)
        self.save(settings, "12-settings-application")
        settings.close()

        export = ExportDialog(window)
        export.show()
        self.save(export, "05-export-dialog")
        export.close()
        self._export_states(window)

        saved_env = os.environ.get("ONNXCHAT_MODELS_DIR")
        os.environ["ONNXCHAT_MODELS_DIR"] = str(self.tmp / "exported")  # beside the default
        models = ModelsDialog(lambda: [app.controller.model_folder], window)
        models.table.setCurrentItem(models.table.topLevelItem(models.table.topLevelItemCount()
                                                              - 1))
        models.show()
        self.save(models, "11-models")
        models.close()
        if saved_env is None:
            os.environ.pop("ONNXCHAT_MODELS_DIR", None)
        else:
            os.environ["ONNXCHAT_MODELS_DIR"] = saved_env

        app.set_theme("dark")
        window = app.window
        window.resize(*SIZE)
        window.open_conversation(chat_id)
        window.view.scroll_to_bottom()
        self.save(window, "06-dark")

        app.set_theme("light")
        app.set_language("zh_CN")
        window = app.window
        window.resize(*SIZE)
        window.new_chat()
        window.apply_chat_settings(ChatSettings(overrides={"temperature": 0.0,
                                                           "max_new_tokens": 80}))
        self._send(app, CHINESE_PROMPT)
        self.save(window, "07-chinese")
        settings = SettingsDialog(window.chat_settings(), app.controller.model_defaults(),
                                  app.controller.engine.model.name, "zh_CN", "light", window)
        settings.show()
        self.save(settings, "08-chinese-settings")
        settings.close()
        window.close()

    def _export_states(self, window) -> None:
        """A real export of the default model into the temporary folder: the dialog as the
        ONNX conversion runs (its time estimate from the first stage) and when it is done.
        Left out where the export extra is not installed."""
        from desktop.ui.export_dialog import ExportDialog

        dialog = ExportDialog(window)
        if not dialog.available:
            return
        dialog.out_edit.setText(str(self.tmp / "exported"))
        dialog.name_edit.setText("smollm2-135m-instruct-2")  # listed beside the default
        dialog.name_edit.textEdited.emit(dialog.name_edit.text())  # as if typed: it stays
        dialog.show()
        stages: list[str] = []
        dialog.stageChanged.connect(stages.append)
        dialog.start_button.click()
        _wait_until(lambda: "onnx" in stages or not dialog.running)
        _wait_until(lambda: not dialog.running, seconds=1.5)  # a tick of the elapsed time
        self.save(dialog, "09-export-running")
        _wait_until(lambda: not dialog.running, seconds=1800)
        if not dialog.exported:
            raise SystemExit(f"screenshots: the export failed: {dialog.error_label.text()}")
        self.save(dialog, "10-export-finished")
        dialog.close()

    def _wait_for_model(self, app) -> None:
        from desktop.ui.selftest import _wait

        if app.controller.engine is None:
            outcome, values = _wait(300, "loading the model", loaded=app.controller.modelLoaded,
                                    failed=app.controller.modelLoadFailed)
            if outcome == "failed":
                raise SystemExit(f"screenshots: the model did not load: {values[0]}")

    def _send(self, app, prompt: str, stop_after: Callable[[str], bool] | None = None,
              before_stop: Callable[[], None] | None = None) -> None:
        from PySide6.QtCore import QEventLoop

        window, controller = app.window, app.controller
        loop = QEventLoop()
        state = {"stopped": False}

        def on_progress(_cid: str, _mid: str, text: str) -> None:
            if stop_after is not None and not state["stopped"] and stop_after(text):
                state["stopped"] = True
                if before_stop is not None:
                    before_stop()
                controller.stop()

        controller.replyProgress.connect(on_progress)
        controller.replyEnded.connect(loop.quit)
        window.composer.input.setPlainText(prompt)
        window.composer.send_button.click()
        loop.exec()
        controller.replyProgress.disconnect(on_progress)
        controller.replyEnded.disconnect(loop.quit)


def _wait_until(done: Callable[[], bool], seconds: float = 600) -> None:
    """Run the event loop until ``done()`` or ``seconds`` pass (checked ten times a second,
    so the export running meanwhile keeps the CPU)."""
    import time

    from PySide6.QtCore import QEventLoop, QTimer

    if done():
        return
    loop, timer = QEventLoop(), QTimer()
    deadline = time.monotonic() + seconds
    timer.setInterval(100)
    timer.timeout.connect(lambda: loop.quit() if done() or time.monotonic() > deadline
                          else None)
    timer.start()
    loop.exec()
    timer.stop()


if __name__ == "__main__":
    raise SystemExit(main())
