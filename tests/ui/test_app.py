"""The application around the window: a reply that cannot start, theme, restoring the last
session, and fonts."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor, QFontDatabase, QFontInfo, QFontMetricsF, QPalette
from PySide6.QtWidgets import QApplication

from desktop.engine import ChatEngine
from desktop.store import ChatStore
from desktop.ui import theme
from desktop.ui.app import Application
from desktop.ui.chat_settings import ChatSettings


def test_a_message_that_cannot_fit_is_refused_before_it_is_stored(qtbot, window, send):
    ends = []
    window.controller.replyEnded.connect(ends.append)
    window.apply_chat_settings(ChatSettings(overrides={"max_new_tokens": 8190}))
    window.composer.input.setPlainText("Please summarise this. " * 40)
    window.composer.send_button.click()
    assert window.banner.isVisible()
    # it fits with a shorter reply: the banner names the setting and how far to lower it
    text = window.banner.label.text()
    prefix = ("This message fits the context only with a shorter reply: lower Max new tokens "
              "to ")
    assert text.startswith(prefix) and text.endswith(" or less in Settings, or shorten the "
                                                     "message.")
    assert 7_000 < int(text[len(prefix):].split(" ")[0].replace(",", "")) < 8_190
    qtbot.wait(200)
    assert ends == []  # no reply was started
    assert window.store.list_conversations() == []
    assert "Please summarise" in window.composer.text  # the draft is kept to shorten it
    assert not window.controller.generating and not window.composer.stop_button.isVisible()
    window.apply_chat_settings(ChatSettings(overrides={"temperature": 0.0,
                                                       "max_new_tokens": 8}))
    assert send(window, "Hello").outcome == "finished"


def test_the_theme_can_be_forced_and_is_remembered(qtbot, app):
    app.set_theme("dark")
    window_colour = QApplication.palette().color(QPalette.ColorRole.Window)
    assert window_colour == QColor(theme.DARK.window)
    assert app.window.colors is theme.DARK and app.prefs.theme == "dark"
    app.set_theme("light")
    assert QApplication.palette().color(QPalette.ColorRole.Window) == QColor(theme.LIGHT.window)
    assert theme.resolve("system") in (theme.LIGHT, theme.DARK)


def test_the_last_conversation_and_window_layout_come_back(qtbot, qapp, tmp_path, model):
    folder = tmp_path / "data"
    first = Application(folder, engine=ChatEngine(model))
    window = first.start()
    chat = first.store.create_conversation("Come back to me")
    first.store.add_message(chat.id, "user", "remember this")
    window.refresh_conversations()
    window.open_conversation(chat.id)
    window.resize(720, 540)  # inside the offscreen screen (800 x 600)
    window.splitter.setSizes([300, 420])
    sizes = window.splitter.sizes()
    window.close()
    second = Application(folder, engine=ChatEngine(model))
    try:
        again = second.start()
        assert again.current_id == chat.id
        assert again.view.widgets()[0].message.text == "remember this"
        assert again.size().width() == 720 and again.size().height() == 540
        assert again.splitter.sizes() == sizes
    finally:
        second.window.close()


def test_chinese_text_gets_a_cjk_font_when_one_is_installed(qapp):
    family = theme.cjk_family()
    if family is None:
        pytest.skip("no CJK font installed (e.g. fonts-noto-cjk); nothing to fall back to")
    theme.apply_fonts(qapp)
    assert family in qapp.font().families()
    assert family in theme.monospace_font().families()


def test_english_keeps_the_system_font_beside_the_cjk_fallback(qapp):
    """The system font comes first by its real name: with a generic name first Qt set all text
    in the CJK family, curly quotes as wide as a Chinese character."""
    family = theme.cjk_family()
    system = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
    if family is None or QFontInfo(system).family() == family:
        pytest.skip("needs a CJK font and a system font that is not it")
    theme.apply_fonts(qapp)
    metrics = QFontMetricsF(qapp.font())
    assert metrics.horizontalAdvance("\u201c") < 0.75 * metrics.horizontalAdvance("中")
    assert QFontInfo(qapp.font()).family() != family


def test_a_damaged_history_is_told_in_the_banner_once(qtbot, qapp, tmp_path, model,
                                                      damaged_history):
    folder = tmp_path / "data"
    damaged_history(folder)

    first = Application(folder, engine=ChatEngine(model))
    window = first.start()
    (moved,) = folder.glob("chats.sqlite3.corrupt-????????-??????")
    assert window.banner.isVisible()
    assert window.banner.label.text() == (f"The chat history file was damaged; it was moved "
                                          f"to {moved} and a new, empty history was started.")
    window.close()
    # The next start, the window's or another front end's, has nothing more to say.
    second = Application(folder, engine=ChatEngine(model))
    try:
        assert not second.start().banner.isVisible()
    finally:
        second.window.close()
    with ChatStore.open(folder) as store:
        assert store.take_notice() is None
