"""Chat settings: every field shows its valid range, bad values keep OK disabled with the
range in the message, and what is accepted is stored with the conversation."""

from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox

from desktop.engine import SamplingSettings
from desktop.engine.settings import RANGES, check_stored
from desktop.errors import SettingsError
from desktop.ui.chat_settings import EDITABLE, ChatSettings
from desktop.ui.settings_dialog import SettingsDialog, interval

DEFAULTS = {"temperature": 0.7, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
            "repetition_penalty": 1.1, "max_new_tokens": 512}


def make_dialog(qtbot, chat: ChatSettings | None = None) -> SettingsDialog:
    dialog = SettingsDialog(chat or ChatSettings(), DEFAULTS, "smollm2-135m-instruct", "en",
                            "system")
    qtbot.addWidget(dialog)
    return dialog


def ok_enabled(dialog: SettingsDialog) -> bool:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()


def test_the_valid_range_is_shown_for_every_setting():
    assert interval("temperature") == "[0, 5]"
    assert interval("top_p") == "(0, 1]"
    assert interval("min_p") == "[0, 1)"
    assert set(EDITABLE) <= set(RANGES)


def test_fields_start_at_the_model_defaults_and_show_their_ranges(qtbot):
    dialog = make_dialog(qtbot)
    assert dialog.fields["temperature"].text() == "0.7"
    assert dialog.fields["max_new_tokens"].text() == "512"
    assert dialog.fields["seed"].text() == ""
    ranges = {label.text() for label in dialog.findChildren(type(dialog.errors["seed"]))
              if label.objectName() == "rangeLabel"}
    assert {interval(name) for name in EDITABLE} <= ranges
    assert ok_enabled(dialog)


def test_out_of_range_and_non_numbers_are_refused_with_the_range(qtbot):
    dialog = make_dialog(qtbot)
    dialog.fields["temperature"].setText("7")
    error = dialog.errors["temperature"]
    assert error.isVisibleTo(dialog) and "[0, 5]" in error.text()
    assert not ok_enabled(dialog)
    dialog.fields["temperature"].setText("0.2")
    assert not error.isVisibleTo(dialog) and ok_enabled(dialog)
    dialog.fields["top_p"].setText("0")
    assert "(0, 1]" in dialog.errors["top_p"].text()
    dialog.fields["top_p"].setText("0.9")
    dialog.fields["top_k"].setText("2.5")
    assert dialog.errors["top_k"].text() == "Enter a whole number"
    dialog.fields["top_k"].setText("abc")
    assert not ok_enabled(dialog)
    dialog.fields["top_k"].setText("-1")
    assert "[0, 1,000,000]" in dialog.errors["top_k"].text()
    dialog.fields["top_k"].setText("0")  # top-k off
    assert not dialog.errors["top_k"].isVisibleTo(dialog)
    dialog.fields["top_k"].setText("20")
    dialog.fields["min_p"].setText("1")
    assert "[0, 1)" in dialog.errors["min_p"].text()
    dialog.fields["min_p"].setText("0,1")  # a decimal comma is accepted
    assert ok_enabled(dialog)
    chat = dialog.chat_settings()
    assert chat.overrides == {"temperature": 0.2, "top_p": 0.9, "top_k": 20, "min_p": 0.1}
    chat.sampling(DEFAULTS).validated()


def test_reset_restores_the_model_defaults(qtbot):
    dialog = make_dialog(qtbot, ChatSettings("Be brief.", {"temperature": 0.0, "seed": 3}))
    assert dialog.fields["temperature"].text() == "0"
    assert dialog.fields["seed"].text() == "3"
    dialog.reset_button.click()
    assert dialog.fields["temperature"].text() == "0.7"
    assert dialog.fields["seed"].text() == ""
    assert dialog.chat_settings() == ChatSettings("Be brief.", {})


def test_settings_are_stored_with_the_conversation_and_used_for_its_replies(window, send):
    window.apply_chat_settings(ChatSettings("Answer in French.",
                                            {"temperature": 0.0, "max_new_tokens": 6,
                                             "seed": 42}))
    end = send(window, "Hello")
    stored = window.store.get_conversation(end.conversation_id)
    assert stored.system_prompt == "Answer in French."
    assert dict(stored.sampling) == {"temperature": 0.0, "max_new_tokens": 6, "seed": 42}
    reply = window.store.messages(end.conversation_id)[-1]
    assert reply.repro.seed == 42 and reply.repro.sampling["max_new_tokens"] == 6
    assert end.stats.new_tokens <= 6
    window.new_chat()
    assert window.chat_settings() == ChatSettings()
    window.open_conversation(end.conversation_id)
    assert window.chat_settings().system_prompt == "Answer in French."
    assert SamplingSettings.from_dict(
        {**DEFAULTS, **window.chat_settings().overrides}).temperature == 0.0


CANDIDATES = [0, 1, -1, 0.5, 40.0, 1.0, 5.0001, 2, 8192, 1_000_001, "hot", True,
              2**63 - 1, 2**63, int("9" * 401), None]


def test_an_imported_setting_is_refused_exactly_when_the_dialog_refuses_it(qtbot):
    # History import checks sampling settings with the dialog's rules (issue #13).
    dialog = make_dialog(qtbot)
    for name in EDITABLE:
        for value in CANDIDATES:
            if value is None and name != "seed":
                continue  # only the seed may be left empty
            dialog.fields[name].setText("" if value is None else str(value))
            typed_ok = dialog.errors[name].isHidden()
            try:
                check_stored({name: value})
            except SettingsError:
                imported_ok = False
            else:
                imported_ok = True
            assert imported_ok == typed_ok, (name, value)
        dialog.reset_button.click()
