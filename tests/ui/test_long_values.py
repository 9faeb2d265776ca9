"""Oversized values never push the window off the screen: a 401-digit seed or "hot" as a
temperature (stored by an older version or imported), a model name of a thousand characters
and an error naming a huge value are shown shortened, and the settings dialog shows such
values for the user to correct instead of failing to open."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialogButtonBox

from desktop.store import Repro
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.settings_dialog import SettingsDialog

HUGE_SEED = 10 ** 400
DEFAULTS = {"temperature": 0.7, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
            "repetition_penalty": 1.1, "max_new_tokens": 512}


def screen_width() -> int:
    return QGuiApplication.primaryScreen().availableGeometry().width()


def test_the_settings_dialog_shows_values_no_field_can_hold(qtbot, tmp_path: Path):
    chat = ChatSettings("Be brief.", {"seed": HUGE_SEED, "temperature": "hot",
                                      "max_new_tokens": -(10 ** 30)})
    dialog = SettingsDialog(chat, DEFAULTS, "smollm2-135m-instruct", "en", "system")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.fields["seed"].text() == str(HUGE_SEED)
    assert dialog.fields["temperature"].text() == "hot"
    assert dialog.errors["seed"].text() == "Out of range: valid values are [0, 2^63−1]"
    assert dialog.errors["temperature"].text() == "Enter a number"
    assert dialog.errors["max_new_tokens"].text().startswith("Out of range")
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    assert dialog.minimumSizeHint().width() < screen_width()
    assert dialog.width() < screen_width()
    dialog.grab().save(str(tmp_path / "settings-huge-seed.png"))
    dialog.fields["seed"].setText("42")
    dialog.fields["temperature"].setText("0.5")
    dialog.fields["max_new_tokens"].setText("100")
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    assert dialog.chat_settings().overrides == {"seed": 42, "temperature": 0.5,
                                                "max_new_tokens": 100}


def test_a_chat_with_huge_values_keeps_the_window_on_the_screen(qtbot, window,
                                                                tmp_path: Path):
    window.show()
    qtbot.waitExposed(window)
    widest = window.minimumSizeHint().width()
    store = window.store
    chat = store.create_conversation("Imported")
    # A file written before settings were checked on the way in holds the seed as it came.
    conn = store._conn()
    conn.execute("UPDATE conversations SET sampling = ? WHERE id = ?",
                 (f'{{"seed":{HUGE_SEED}}}', chat.id))
    store.add_message(chat.id, "user", "Hello")
    name = "an-imported-model-" + "x" * 980
    repro = Repro(model=name, manifest_sha256="0" * 64, device="cpu", sampling={},
                  seed=None, prompt_tokens=3, context_length=8192)
    store.begin_reply(chat.id, repro).fail(
        f"seed = {HUGE_SEED} is out of range: valid is [0, 9223372036854775807]")
    window.refresh_conversations()
    window.open_conversation(chat.id)
    # The context meter checks the settings and names the bad one in the status bar.
    qtbot.waitUntil(lambda: window.status.notice_label.text().startswith("seed = "),
                    timeout=10_000)
    assert "out of range" in window.status.notice_label.text()
    qtbot.wait(100)
    reply = window.view.widgets()[-1]
    assert len(reply.role_label.text()) <= 80 and reply.role_label.text().endswith("…")
    assert "0000…0000" in reply.meta_label.text()
    assert len(max(reply.meta_label.text().split(), key=len)) <= 65
    assert window.minimumSizeHint().width() <= widest < screen_width()
    assert window.width() <= 1180  # its size from the start, not pushed wider
    window.grab().save(str(tmp_path / "window-huge-values.png"))
    # Sending is refused in one line, before anything is stored, and the banner fits too.
    window.composer.input.setPlainText("Again")
    window.composer.send_button.click()
    assert not window.controller.generating
    assert len(store.messages(chat.id)) == 2
    assert window.banner.isVisible() and window.banner.label.text().startswith("seed = ")
    assert len(max(window.banner.label.text().split(), key=len)) <= 65
    assert window.minimumSizeHint().width() <= widest
