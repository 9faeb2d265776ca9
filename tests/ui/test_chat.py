"""The window with the real default model: sending, streaming, stopping, regenerating, editing,
switching and closing while a reply streams, and the event loop staying responsive."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox
from responsiveness import assert_responsive, ui_thread_stalls

from desktop.store import CANCELLED, COMPLETE, ChatStore
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.chat_view import PAGE
from desktop.ui.settings_dialog import SettingsDialog


def test_send_streams_a_reply_titles_the_chat_and_saves_it(qtbot, window, send):
    window.composer.input.setPlainText("What is the capital of France?")
    progress = []
    window.controller.replyProgress.connect(lambda cid, mid, text: progress.append(text))
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000) as ended:
        qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    end = ended.args[0]
    assert end.outcome == "finished"
    assert end.text.strip() and "\ufffd" not in end.text
    assert progress and progress[-1] == end.text  # streamed, ending with the full text
    assert window.composer.text == ""
    messages = window.store.messages(window.current_id)
    assert [(m.role, m.state) for m in messages] == [("user", COMPLETE), ("assistant", COMPLETE)]
    assert messages[1].text == end.text
    assert messages[1].repro.sampling["temperature"] == 0.0
    assert window.store.get_conversation(window.current_id).title == \
        "What is the capital of France?"
    assert window.sidebar.list.item(0).text() == "What is the capital of France?"
    widgets = window.view.widgets()
    assert [w.message.role for w in widgets] == ["user", "assistant"]
    assert widgets[1].message.text == end.text
    assert "tokens/s" in window.status.speed_label.text()
    assert "ms" in window.status.first_token_label.text()


def test_shift_enter_adds_a_line_and_enter_sends(qtbot, window):
    box = window.composer.input
    box.setFocus()
    qtbot.keyClicks(box, "first")
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(box, "second")
    assert box.toPlainText() == "first\nsecond"
    assert not window.controller.generating
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000):
        qtbot.keyClick(box, Qt.Key.Key_Return)
    assert window.store.messages(window.current_id)[0].text == "first\nsecond"


def test_stop_mid_reply_keeps_the_text_so_far(qtbot, window, start_held_reply):
    start_held_reply(window, "Write a long story about a dragon.")
    assert window.composer.stop_button.isVisible()
    assert not window.composer.send_button.isEnabled()
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000) as ended:
        window.composer.stop_button.click()
    end = ended.args[0]
    assert end.outcome == "cancelled"
    assert not window.composer.stop_button.isVisible()
    reply = window.store.messages(window.current_id)[-1]
    assert reply.state == CANCELLED
    assert reply.text == end.text and reply.text
    assert reply.repro.stop_reason == "cancelled"
    assert window.view.widgets()[-1].meta_label.text() == "Stopped"


def test_escape_stops_the_reply(qtbot, window, start_held_reply, shortcut):
    assert not window.stop_action.isEnabled()  # Esc does nothing while no reply runs
    start_held_reply(window, "Count from one to one hundred.")
    assert window.stop_action.isEnabled()
    assert window.stop_action.shortcutContext() == Qt.ShortcutContext.WindowShortcut
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000) as ended:
        shortcut(window, "Esc")
    assert ended.args[0].outcome == "cancelled" and ended.args[0].text
    assert window.view.widgets()[-1].meta_label.text() == "Stopped"
    assert not window.stop_action.isEnabled()


def test_regenerate_replaces_the_reply_and_keeps_the_old_branch(qtbot, window, send):
    first = send(window, "Name a colour.")
    old_id = first.message_id
    reply_widget = window.view.widgets()[-1]
    assert reply_widget.regenerate_button.isVisible()
    window.apply_chat_settings(ChatSettings(overrides={"temperature": 1.0,
                                                       "max_new_tokens": 12, "seed": 7}))
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000) as ended:
        reply_widget.regenerate_button.click()
    second = ended.args[0]
    assert second.outcome == "finished" and second.message_id != old_id
    branch = window.store.messages(window.current_id)
    assert [m.id for m in branch][-1] == second.message_id and len(branch) == 2
    assert [m.id for m in window.store.siblings(second.message_id)] == [old_id,
                                                                         second.message_id]
    shown = window.view.widgets()[-1]
    assert shown.message.id == second.message_id
    assert shown.branch_label.isVisible() and shown.branch_label.text() == "2/2"
    shown.previous_button.click()  # back to the first answer
    assert window.view.widgets()[-1].message.id == old_id


def test_edit_and_resend_starts_a_new_branch(qtbot, window, send):
    send(window, "Say hello.")
    original = window.store.messages(window.current_id)
    user_widget = window.view.widgets()[0]
    user_widget.edit_button.click()
    assert user_widget.editor.isVisible()
    user_widget.editor.setPlainText("Say goodbye.")
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000) as ended:
        user_widget.save_edit_button.click()
    assert ended.args[0].outcome == "finished"
    branch = window.store.messages(window.current_id)
    assert branch[0].text == "Say goodbye."
    assert branch[0].id != original[0].id
    assert {m.id for m in window.store.siblings(branch[0].id)} == {original[0].id, branch[0].id}
    assert window.store.get_message(original[1].id).text == original[1].text  # old branch kept
    assert window.view.widgets()[0].message.text == "Say goodbye."


def test_switching_conversations_while_a_reply_streams(qtbot, window, send,
                                                       start_held_reply):
    send(window, "Hello there.")
    first_id = window.current_id
    window.new_chat()
    start_held_reply(window, "Tell me about the sea.")
    second_id = window.current_id
    assert second_id != first_id
    window.open_conversation(first_id)
    assert window.view.widgets()[0].message.text == "Hello there."
    assert not window.view.widgets()[-1].regenerate_button.isEnabled()  # busy meanwhile
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000):
        window.stop()
    assert window.view.widgets()[0].message.text == "Hello there."
    window.open_conversation(second_id)
    saved = window.store.messages(second_id)[-1]
    assert saved.state == CANCELLED and saved.text
    assert window.view.widgets()[-1].message.text == saved.text


def test_closing_during_a_reply_stops_it_and_saves_the_partial_text(app, tmp_path,
                                                                    start_held_reply):
    window = app.window
    start_held_reply(window, "Write a poem about autumn leaves.")
    conversation_id = window.current_id
    window.close()
    assert app.controller._thread.isFinished()
    with ChatStore.open(tmp_path / "data") as store:
        reply = store.messages(conversation_id)[-1]
    assert reply.role == "assistant" and reply.state == CANCELLED and reply.text


def test_event_loop_stays_responsive_while_a_reply_streams(qtbot, window, long_reply):
    window.apply_chat_settings(ChatSettings(overrides={**long_reply.overrides,
                                                       "max_new_tokens": 1000}))
    window.composer.input.setPlainText("Explain how rain forms, in detail.")
    with qtbot.waitSignal(window.controller.replyProgress, timeout=60_000):
        window.composer.send_button.click()
    # Measured while the reply streams (a fast machine may finish it sooner than 2.5 s).
    stalls = ui_thread_stalls(qtbot, 2500, until=lambda: not window.controller.generating)
    window.stop()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=60_000)
    assert_responsive(stalls)


def test_a_long_history_opens_with_one_page_of_widgets(qtbot, window):
    store = window.store
    conversation = store.create_conversation("Long chat")
    for n in range(150):
        store.add_message(conversation.id, "user", f"Question {n}")
        store.add_message(conversation.id, "assistant", f"Answer **{n}**")
    window.refresh_conversations()
    window.open_conversation(conversation.id)
    widgets = window.view.widgets()
    assert len(widgets) == PAGE
    assert widgets[-1].message.text == "Answer **149**"
    assert window.view.earlier_button.isVisible()
    window.view.show_earlier()
    assert len(window.view.widgets()) == 2 * PAGE
    assert window.view.widgets()[0].message.text == f"Question {150 - PAGE}"


def test_context_meter_counts_the_draft_as_it_is_typed(qtbot, window):
    meter = window.status.context_meter
    controller, settings = window.controller, window.chat_settings()
    empty = controller.plan(None, [], "", settings).used
    qtbot.waitUntil(lambda: meter.value() == empty, timeout=30_000)
    context = controller.engine.model.context_length
    assert meter.maximum() == context and f"{empty:,} / {context:,}" in meter.format()
    draft = "word " * 300
    typed = controller.plan(None, [], draft, settings).used
    assert typed > empty + 250
    window.composer.input.setPlainText(draft)
    qtbot.waitUntil(lambda: meter.value() == typed, timeout=30_000)


def test_a_notice_says_when_old_messages_will_not_fit(qtbot, window):
    store = window.store
    conversation = store.create_conversation("Very long")
    for n in range(12):
        store.add_message(conversation.id, "user", f"Story {n}: " + "once upon a time " * 200)
        store.add_message(conversation.id, "assistant", "and then " * 200)
    window.refresh_conversations()
    window.open_conversation(conversation.id)
    qtbot.waitUntil(lambda: "left out" in window.status.notice_label.text(), timeout=30_000)
    plan = window.controller.plan(window.store.get_conversation(conversation.id),
                                  window.view.messages, "", window.chat_settings())
    assert plan.dropped
    assert window.status.notice_label.text().startswith(f"{len(plan.dropped)} older messages")


def accept_next_dialog(button) -> dict:
    """Press ``button`` on the next modal dialog; what it showed."""
    seen: dict = {}

    def press() -> None:
        dialog = QApplication.activeModalWidget()
        seen["dialog"] = dialog
        seen["text"] = dialog.text() if isinstance(dialog, QMessageBox) else ""
        if isinstance(dialog, QMessageBox):
            dialog.button(button).click()
        else:
            dialog.reject()

    QTimer.singleShot(0, press)
    return seen


def test_deleting_a_message_asks_first_and_removes_what_follows(qtbot, window, send):
    send(window, "First question")
    send(window, "Second question")
    second = window.view.widgets()[2]
    assert second.message.text == "Second question"
    seen = accept_next_dialog(QMessageBox.StandardButton.No)
    second.delete_button.click()
    assert "everything after it" in seen["text"]
    assert len(window.store.messages(window.current_id)) == 4
    accept_next_dialog(QMessageBox.StandardButton.Yes)
    second.delete_button.click()
    remaining = window.store.messages(window.current_id)
    assert [m.role for m in remaining] == ["user", "assistant"]
    assert remaining[0].text == "First question"
    assert len(window.view.widgets()) == 2


def test_ctrl_comma_opens_the_settings(qtbot, window, shortcut):
    seen = accept_next_dialog(QMessageBox.StandardButton.Cancel)
    assert shortcut(window, "Ctrl+,") is window.settings_action
    assert isinstance(seen["dialog"], SettingsDialog)


def test_a_one_megabyte_paste_keeps_the_window_responsive_and_is_refused(qtbot, window):
    # 1 MB of a log file, pasted from the clipboard the way a user does it.
    lines = "".join(f"2026-11-28 12:{n % 60:02d} INFO worker {n}: request handled in 12 ms\n"
                    for n in range(17_000))
    QGuiApplication.clipboard().setText(lines)
    window.composer.input.setFocus()
    window.composer.input.paste()
    assert len(window.composer.text) > 1_000_000
    assert_responsive(ui_thread_stalls(qtbot, 1500))  # the context meter re-plans meanwhile
    assert "more than the model's context" in window.status.notice_label.text()
    window.composer.send_button.click()
    assert not window.controller.generating
    assert window.store.list_conversations() == []  # nothing half-stored
    assert "characters, more than the model's context" in window.banner.label.text()
