"""Window tests: offscreen Qt, a temporary data folder each, the real default model loaded once,
and any Qt warning fails the test that caused it."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported anywhere

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QtMsgType, qInstallMessageHandler

from desktop.engine import ChatEngine, Model, load_model
from desktop.ui.app import Application
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.main_window import MainWindow
from desktop.ui.prefs import Preferences

REPO = Path(__file__).resolve().parents[2]

#: Messages of Qt's offscreen platform itself, not of the app: it cannot resize real windows.
PLATFORM_NOISE = ("This plugin does not support propagateSizeHints()",)
#: Short greedy replies keep the suite fast.
SHORT = ChatSettings(overrides={"temperature": 0.0, "max_new_tokens": 12})


@pytest.fixture
def long_reply() -> ChatSettings:
    """Settings for a reply long enough to stop in the middle (no repetition penalty, so it
    does not end early)."""
    return ChatSettings(overrides={"temperature": 0.0, "max_new_tokens": 200,
                                   "repetition_penalty": 1.0})


@pytest.fixture(autouse=True)
def models_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The window lists the repository's models (where `make model` puts the default)."""
    monkeypatch.setenv("ONNXCHAT_MODELS_DIR", str(REPO / "models"))
    return REPO / "models"


@pytest.fixture(autouse=True)
def fail_on_qt_warnings() -> Iterator[None]:
    """Record Qt warnings (from any thread) and fail the test if there were any."""
    warnings: list[str] = []

    def handler(mode: QtMsgType, context: object, message: str) -> None:
        if mode != QtMsgType.QtDebugMsg and mode != QtMsgType.QtInfoMsg and not any(
                message.startswith(noise) for noise in PLATFORM_NOISE):
            warnings.append(message)
        if previous is not None:
            previous(mode, context, message)

    previous = qInstallMessageHandler(handler)
    yield
    qInstallMessageHandler(previous)
    if warnings:
        pytest.fail("Qt warnings:\n" + "\n".join(warnings))


@pytest.fixture(scope="session")
def model(default_model: Path) -> Model:
    """The default model, loaded once for the whole session."""
    return load_model(default_model, device="cpu")


@pytest.fixture
def app(qapp, tmp_path: Path, model: Model) -> Iterator[Application]:
    """A running application on a fresh data folder, in English, with the default model."""
    Preferences(tmp_path / "data").language = "en"
    application = Application(tmp_path / "data", engine=ChatEngine(model))
    application.start()
    yield application
    if application.window is not None:
        application.window.close()
    application.shutdown()


@pytest.fixture
def window(app: Application) -> MainWindow:
    assert app.window is not None
    app.window.apply_chat_settings(SHORT)
    return app.window


@pytest.fixture
def send(qtbot):
    """``send(window, text)``: type, press Send, wait for the reply to end; the ReplyEnd."""

    def send_and_wait(window: MainWindow, text: str, timeout: int = 60_000):
        window.composer.input.setPlainText(text)
        with qtbot.waitSignal(window.controller.replyEnded, timeout=timeout) as blocker:
            window.composer.send_button.click()
        return blocker.args[0]

    return send_and_wait
