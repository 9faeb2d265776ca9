"""Window tests: offscreen Qt, a temporary data folder each, the real default model loaded once,
and any Qt warning fails the test that caused it."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported anywhere

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import (
    QCoreApplication,
    QObject,
    Qt,
    QTimer,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtGui import QAction, QKeySequence, QShortcut, QShortcutEvent
from PySide6.QtWidgets import QApplication, QWidget

from desktop.engine import ChatEngine, Model, load_model
from desktop.ui.app import Application
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.controller import ChatController
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


class HeldReply:
    """Holds the engine thread at the first piece of the next reply once :meth:`arm` was
    called, until that reply is stopped (Stop, Esc, closing the window), so a test acts on a
    reply that is provably still running, however fast the CPU is and however short the
    model's answer would be.

    The hold is a slot connected directly to the worker's ``piece`` signal: it runs in the
    engine thread after the piece was queued for the window, and returns once the worker has
    been asked to cancel that job (or the test ends).
    """

    def __init__(self, controller: ChatController) -> None:
        self._worker = controller._worker
        self._armed = threading.Event()
        #: Set (in the engine thread) when the reply is held: one piece is on its way.
        self.reached = threading.Event()
        self._released = threading.Event()
        self._worker.piece.connect(self._on_piece, Qt.ConnectionType.DirectConnection)

    def arm(self) -> None:
        """Hold the reply that starts next."""
        self._armed.set()

    def _on_piece(self, job_id: int, piece: str) -> None:
        if not self._armed.is_set() or self.reached.is_set():
            return
        self.reached.set()
        while not self._released.wait(0.005):
            with self._worker._lock:
                if job_id in self._worker._cancelled:
                    return

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def held_reply(app: Application) -> Iterator[HeldReply]:
    """Holds a reply in the middle until it is stopped (see :class:`HeldReply`)."""
    hold = HeldReply(app.controller)
    yield hold
    hold.release()  # a failed test must not leave the engine thread waiting


@pytest.fixture
def start_held_reply(qtbot, held_reply: HeldReply, long_reply: ChatSettings):
    """``start_held_reply(window, text)``: send ``text`` and return once its first piece is
    on screen, with the reply held in the middle until it is stopped."""

    def start(window: MainWindow, text: str) -> None:
        window.apply_chat_settings(long_reply)
        window.composer.input.setPlainText(text)
        held_reply.arm()
        with qtbot.waitSignal(window.controller.replyProgress, timeout=120_000):
            window.composer.send_button.click()
        qtbot.waitUntil(held_reply.reached.is_set, timeout=120_000)
        assert window.controller.generating

    return start


def press_shortcut(window: MainWindow, keys: str) -> QObject:
    """Press ``keys`` the way Qt's shortcut map delivers it in the active window: a shortcut
    event to the one action or shortcut of ``window`` bound to those keys.

    Offscreen, which window is active and which widget has the keyboard focus depends on the
    platform and on what other tests showed; the key binding is what the app decides, so it
    is checked here and the activation step is left out. Returns the action or shortcut, for
    checks of its context.
    """
    sequence = QKeySequence(keys)
    bound: list[QObject] = [
        item for item in [*window.findChildren(QAction), *window.findChildren(QShortcut)]
        if sequence in (item.shortcuts() if isinstance(item, QAction) else item.keys())]
    assert len(bound) == 1, f"{keys} is bound to {len(bound)} actions or shortcuts"
    QCoreApplication.sendEvent(bound[0], QShortcutEvent(sequence))
    return bound[0]


@pytest.fixture
def shortcut() -> Callable[[MainWindow, str], QObject]:
    """``shortcut(window, "Esc")``: see :func:`press_shortcut`."""
    return press_shortcut


@pytest.fixture
def on_modal() -> Iterator[Callable[[type, Callable[[QWidget], None]], None]]:
    """``on_modal(QMessageBox, handle)``: call ``handle`` with the next modal widget of that
    type once it is open. A modal dialog's ``exec()`` blocks the test's own code, so a timer
    (every 10 ms, until the dialog is there) answers it from inside that event loop."""
    timers: list[QTimer] = []

    def watch(kind: type, handle: Callable[[QWidget], None]) -> None:
        timer = QTimer()
        timer.setInterval(10)

        def check() -> None:
            widget = QApplication.activeModalWidget()
            if isinstance(widget, kind):
                timer.stop()
                handle(widget)

        timer.timeout.connect(check)
        timer.start()
        timers.append(timer)

    yield watch
    for timer in timers:
        timer.stop()
