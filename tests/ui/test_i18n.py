"""Translations: the catalogues match the code and are complete, and under the Chinese
translator no visible string of the window or its dialogs is left in English."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QTabWidget,
    QWidget,
)

from desktop.ui import i18n_build
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.export_dialog import ExportDialog
from desktop.ui.models_dialog import ModelsDialog
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.welcome import WelcomePage

#: Not translated on purpose: names, technical terms shown as they are, symbols.
ALLOWED = {"OnnxChat", "CUDA", "CPU", "English", "简体中文", "‹", "›", "✕", "python", ""}


def english_sources() -> set[str]:
    root = ET.parse(i18n_build.ts_file("en")).getroot()
    return {_plain(m.findtext("source") or "") for m in root.iter("message")}


def _plain(text: str) -> str:
    """Text as shown: mnemonics removed, plural placeholders filled."""
    return re.sub(r"&(?!&)", "", text).replace("&&", "&").replace("(s)", "s")


def visible_strings(root: QWidget) -> set[str]:
    """Every text a user can see or hear on ``root`` and its children, shown or not yet."""
    found: set[str] = set()
    for widget in [root, *root.findChildren(QWidget)]:
        found |= {widget.toolTip(), widget.accessibleName(), widget.windowTitle()}
        if isinstance(widget, (QLabel, QAbstractButton, QLineEdit)):
            found.add(widget.text())
        if isinstance(widget, (QLineEdit, QPlainTextEdit)):
            found.add(widget.placeholderText())
        if isinstance(widget, QComboBox):
            found |= {widget.itemText(i) for i in range(widget.count())}
        if isinstance(widget, QTabWidget):
            found |= {widget.tabText(i) for i in range(widget.count())}
        if isinstance(widget, QGroupBox):
            found.add(widget.title())
        if isinstance(widget, QProgressBar) and widget.isTextVisible():
            found.add(widget.text())
        for action in widget.actions():
            found |= {action.text(), action.toolTip()}
            if action.menu() is not None:
                found |= {a.text() for a in action.menu().actions()}
    return {_plain(text) for text in found}


def untranslated(root: QWidget, model_name: str) -> set[str]:
    return {text for text in visible_strings(root) & english_sources()
            if text not in ALLOWED | {model_name}}


def test_catalogues_match_the_code_and_are_complete():
    assert i18n_build.check() == []


def test_a_comment_that_became_a_translators_note_is_a_problem(tmp_path):
    """lupdate turns a ``#:`` attribute comment into a note on the next translated string;
    the check names it, so no translator is shown a note about something else."""
    ts = tmp_path / "onnxchat_zh_CN.ts"
    ts.write_text('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n<TS version="2.1">'
                  "<context><name>ExportDialog</name><message><source>Prepare a model</source>"
                  "<extracomment>The folder the last export wrote.</extracomment>"
                  "<translation>准备模型</translation></message></context></TS>\n",
                  encoding="utf-8")
    assert i18n_build.problems(ts) == [
        "onnxchat_zh_CN.ts: ExportDialog: a `#:` comment in the code became a translator's "
        "note on 'Prepare a model'; write it with a plain `#`"]


def test_catalogues_compile(tmp_path):
    for qm in i18n_build.build():
        assert qm.is_file() and qm.stat().st_size > 1000


def test_nothing_visible_is_left_in_english_under_chinese(qtbot, app, send, model):
    app.set_language("zh_CN")
    window = app.window
    window.apply_chat_settings(ChatSettings(overrides={"temperature": 0.0,
                                                       "max_new_tokens": 8}))
    end = send(window, "Hi")
    assert end.outcome == "finished"
    assert window.sidebar.new_button.text() == "新建对话"
    assert window.view.widgets()[0].role_label.text() == "你"
    # As many tokens as this machine's reply has (an early end of text is allowed).
    meta = window.view.widgets()[-1].meta_label.text()
    assert meta.startswith(f"{end.stats.new_tokens} 个词元")
    window.banner.show_message("x", action_text=window.tr("Undo"), action=lambda: None)
    name = model.name
    assert untranslated(window, name) == set()
    exported = ExportDialog(window)
    if exported.available:
        assert exported.show_result(model.manifest.folder)
    dialogs = [SettingsDialog(window.chat_settings(), app.controller.model_defaults(), name,
                              "zh_CN", "system", window),
               ExportDialog(window), exported, WelcomePage(window),
               ModelsDialog(lambda: [model.manifest.folder], window)]
    dialogs[0].fields["temperature"].setText("9")
    dialogs[0].fields["top_k"].setText("x")
    for dialog in dialogs:
        assert untranslated(dialog, name) == set(), type(dialog).__name__
        dialog.deleteLater()


def test_the_language_follows_the_system_locale():
    code = "from desktop.ui.i18n import system_language; print(system_language())"
    for lang, expected in (("zh_CN.UTF-8", "zh_CN"), ("en_GB.UTF-8", "en"),
                           ("de_DE.UTF-8", "en")):
        env = {**os.environ, "LANG": lang, "LC_ALL": lang, "LANGUAGE": ""}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, check=True)
        assert result.stdout.strip() == expected, lang


def test_the_chosen_language_is_kept_for_the_next_start(qtbot, app):
    conversation = app.store.create_conversation("Kept")
    app.window.refresh_conversations()
    app.window.open_conversation(conversation.id)
    app.set_language("zh_CN")
    assert app.window.current_id == conversation.id
    assert app.window.composer.send_button.text() == "发送"
    assert app.prefs.language == "zh_CN"
    app.set_language("en")
    assert app.window.composer.send_button.text() == "Send"
