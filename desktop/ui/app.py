"""Starting the window: ``onnxchat`` with no command calls :func:`main`.

:class:`Application` holds what outlives a window (preferences, translators, theme, the chat
store, the engine controller, the local server), so changing the language or the theme simply
builds a new window around the same controller, even while a reply streams.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.engine import ChatEngine
from desktop.errors import UserError
from desktop.paths import APP_NAME, data_dir
from desktop.store import ChatStore
from desktop.ui import i18n, theme
from desktop.ui.controller import ChatController
from desktop.ui.main_window import MainWindow
from desktop.ui.platform_check import check_x11
from desktop.ui.prefs import Preferences
from desktop.ui.server_process import LocalServer


def qt_application() -> QApplication:
    """The process's QApplication, created with the app's names on first use."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QGuiApplication.setApplicationName(APP_NAME)
    QGuiApplication.setApplicationDisplayName(APP_NAME)
    QGuiApplication.setDesktopFileName("onnxchat")
    app = QApplication(sys.argv[:1])
    app.setWindowIcon(QIcon(str(Path(__file__).with_name("resources") / "onnxchat.svg")))
    return app


class Application(QObject):
    """One running OnnxChat: store, controller, preferences, and the current window."""

    def __init__(self, folder: Path, engine: ChatEngine | None = None) -> None:
        super().__init__()
        self.qapp = qt_application()
        folder.mkdir(parents=True, exist_ok=True)
        self.data_dir = folder
        self.prefs = Preferences(folder)
        self.translations = i18n.Translations()
        self.translations.use(i18n.resolve(self.prefs.language))
        theme.apply_fonts(self.qapp)
        self.colors = theme.resolve(self.prefs.theme)
        theme.apply(self.qapp, self.colors)
        self.qapp.styleHints().colorSchemeChanged.connect(self._on_color_scheme_changed)
        self.store = ChatStore.open(folder)
        self.controller = ChatController(self.store, engine)
        self.server = LocalServer(folder, self)
        self.window: MainWindow | None = None
        self._closed = False

    def start(self, model: str | None = None, show: bool = True) -> MainWindow:
        """Build and show the window; load ``model`` (a name or folder) or the usual one."""
        self.window = self._build_window()
        self.window.start(model)
        if show:
            self.window.show()
        return self.window

    def _build_window(self) -> MainWindow:
        window = MainWindow(self.controller, self.prefs, self.colors, self.prefs.language,
                            self.prefs.theme, server=self.server)
        window.languageChosen.connect(self.set_language)
        window.themeChosen.connect(self.set_theme)
        window.closed.connect(self.shutdown)
        return window

    def rebuild_window(self) -> None:
        """Replace the window (new language or colours), keeping its place and conversation."""
        old = self.window
        if old is None:
            return
        visible = old.isVisible()
        old.replace()
        old.deleteLater()
        self.window = self._build_window()
        self.window.start()
        if visible:
            self.window.show()

    @Slot(str)
    def set_language(self, language: str) -> None:
        """Use ``language`` ("system", "en", "zh_CN") from now on, and remember it."""
        self.prefs.language = language
        self.translations.use(i18n.resolve(language))
        self.rebuild_window()

    @Slot(str)
    def set_theme(self, preference: str) -> None:
        """Use the "system", "light" or "dark" look from now on, and remember it."""
        self.prefs.theme = preference
        self._apply_colors()

    @Slot()
    def _on_color_scheme_changed(self) -> None:
        if self.prefs.theme == "system":
            self._apply_colors()

    def _apply_colors(self) -> None:
        colors = theme.resolve(self.prefs.theme)
        if colors == self.colors:
            return
        self.colors = colors
        theme.apply(self.qapp, colors)
        self.rebuild_window()

    @Slot()
    def shutdown(self) -> None:
        """Stop any reply (saving its text so far), end the engine thread, close the store."""
        if self._closed:
            return
        self._closed = True
        self.server.shutdown()
        self.controller.shutdown()
        self.prefs.sync()
        self.store.close()
        self.translations.clear()


def _check_display() -> None:
    """Qt aborts the process when it cannot reach a display; say so in one line instead."""
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY "
                        "is set); use `onnxchat chat` in a terminal, or run the window inside a "
                        "desktop session")


def main(args: argparse.Namespace) -> int:
    """Open the window (or run the self-test with ``--self-test``); the exit status."""
    if getattr(args, "self_test", False):
        from desktop.ui.selftest import run

        return run(args)
    _check_display()
    check_x11()  # before Qt, which would abort the process on a missing library
    qapp = qt_application()
    try:
        app = Application(data_dir(getattr(args, "data_dir", None)))
    except UserError as exc:
        QMessageBox.critical(None, APP_NAME, str(exc))
        raise
    # Ctrl-C in the terminal closes the window like the close button (saving the reply), once
    # the event loop runs. Installed before the window is shown, so a Ctrl-C that comes as it
    # appears is not a KeyboardInterrupt inside some slot, printed and lost. Python only runs
    # signal handlers when the interpreter gets control, hence the timer.
    signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(
        0, lambda: app.window is not None and app.window.close()))
    app.start(getattr(args, "model", None))
    wake = QTimer()
    wake.start(250)
    wake.timeout.connect(lambda: None)
    status = qapp.exec()
    app.shutdown()
    return status
