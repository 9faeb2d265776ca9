"""Concurrency a user can cause in the window: sending while a reply streams, pressing Stop
twice, switching the model mid-reply, closing during a model load, a second window."""

from __future__ import annotations

from desktop.engine import ChatEngine
from desktop.store import CANCELLED, STREAMING
from desktop.ui.app import Application


def start_long_reply(qtbot, window, long_reply, text="Write a long story about a lighthouse."):
    window.apply_chat_settings(long_reply)
    window.composer.input.setPlainText(text)
    with qtbot.waitSignal(window.controller.replyProgress, timeout=60_000):
        window.composer.send_button.click()


def test_sending_while_a_reply_streams_is_not_possible(qtbot, window, long_reply):
    start_long_reply(qtbot, window, long_reply)
    window.composer.input.setPlainText("A second question typed meanwhile")
    assert not window.composer.send_button.isEnabled()
    window.composer.input.submitted.emit()  # Enter pressed anyway
    qtbot.wait(100)
    conversation = window.store.messages(window.current_id)
    assert [m.role for m in conversation] == ["user", "assistant"]
    assert window.composer.text == "A second question typed meanwhile"  # the draft is kept
    window.stop()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)


def test_pressing_stop_twice_ends_the_reply_once(qtbot, window, long_reply):
    ends = []
    window.controller.replyEnded.connect(ends.append)
    start_long_reply(qtbot, window, long_reply)
    window.composer.stop_button.click()
    window.stop()  # Esc right after the click
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)
    qtbot.wait(200)
    assert [end.outcome for end in ends] == ["cancelled"]
    assert window.store.messages(window.current_id)[-1].state == CANCELLED


def test_switching_the_model_while_generating_waits_for_the_reply(qtbot, window, long_reply,
                                                                   default_model):
    ends = []
    window.controller.replyEnded.connect(ends.append)
    start_long_reply(qtbot, window, long_reply)
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=120_000):
        window.model_bar.modelChosen.emit(str(default_model))
        window.stop()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)
    assert len(ends) == 1 and ends[0].outcome in ("cancelled", "finished")
    saved = window.store.messages(window.current_id)[-1]
    assert saved.text == ends[0].text


def test_closing_during_a_model_load(qtbot, app, default_model):
    window = app.window
    window.model_bar.modelChosen.emit(str(default_model))
    assert window.controller.loading is not None
    window.close()
    app.shutdown()  # waits for the engine thread: no "QThread destroyed while running"
    assert not app.controller._thread.isRunning()


def test_a_second_window_leaves_the_first_windows_reply_streaming(qtbot, qapp, window,
                                                                  long_reply, model, tmp_path):
    # Issue #13: every window start marked replies still streaming as interrupted, even the
    # one another window was writing.
    start_long_reply(qtbot, window, long_reply)
    reply_id = window.controller.reply_id
    second = Application(tmp_path / "data", engine=ChatEngine(model))  # same folder
    try:
        assert second.store.get_message(reply_id).state == STREAMING
    finally:
        second.shutdown()
    window.stop()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)
    reply = window.store.get_message(reply_id)
    assert reply.state == CANCELLED and reply.text
