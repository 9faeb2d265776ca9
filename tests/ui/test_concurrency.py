"""Concurrency a user can cause in the window: sending while a reply streams, pressing Stop
twice, switching the model mid-reply, closing during a model load, a second window. Each reply
is held in the middle until it is stopped (``start_held_reply``), so the order of events is the
same on any machine."""

from __future__ import annotations

from desktop.engine import ChatEngine
from desktop.store import CANCELLED, STREAMING
from desktop.ui.app import Application

STORY = "Write a long story about a lighthouse."


def test_sending_while_a_reply_streams_is_not_possible(qtbot, window, start_held_reply):
    start_held_reply(window, STORY)
    window.composer.input.setPlainText("A second question typed meanwhile")
    assert not window.composer.send_button.isEnabled()
    window.composer.input.submitted.emit()  # Enter pressed anyway
    conversation = window.store.messages(window.current_id)
    assert [m.role for m in conversation] == ["user", "assistant"]
    assert window.composer.text == "A second question typed meanwhile"  # the draft is kept
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000):
        window.stop()
    assert [m.role for m in window.store.messages(window.current_id)] == ["user", "assistant"]


def test_pressing_stop_twice_ends_the_reply_once(qtbot, window, start_held_reply):
    ends = []
    window.controller.replyEnded.connect(ends.append)
    start_held_reply(window, STORY)
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000):
        window.composer.stop_button.click()
        window.stop()  # Esc right after the click
    # A second end would be queued behind the first; a model load is queued behind both in
    # the same engine thread, so once it is done every signal of the reply has arrived.
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=120_000):
        window.model_bar.modelChosen.emit(str(window.controller.model_folder))
    assert [end.outcome for end in ends] == ["cancelled"]
    assert window.store.messages(window.current_id)[-1].state == CANCELLED


def test_switching_the_model_while_generating_waits_for_the_reply(qtbot, window,
                                                                   start_held_reply,
                                                                   default_model):
    events = []
    window.controller.replyEnded.connect(lambda end: events.append(("ended", end)))
    window.controller.modelLoaded.connect(lambda engine: events.append(("loaded", engine)))
    start_held_reply(window, STORY)
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=120_000):
        window.model_bar.modelChosen.emit(str(default_model))
        window.stop()
    assert [kind for kind, _ in events] == ["ended", "loaded"]
    end = events[0][1]
    assert end.outcome == "cancelled"
    saved = window.store.messages(window.current_id)[-1]
    assert saved.text == end.text and saved.state == CANCELLED


def test_closing_during_a_model_load(qtbot, app, default_model):
    window = app.window
    window.model_bar.modelChosen.emit(str(default_model))
    assert window.controller.loading is not None
    window.close()
    app.shutdown()  # waits for the engine thread: no "QThread destroyed while running"
    assert not app.controller._thread.isRunning()


def test_a_second_window_leaves_the_first_windows_reply_streaming(qtbot, qapp, window,
                                                                  start_held_reply, model,
                                                                  tmp_path):
    # Issue #13: every window start marked replies still streaming as interrupted, even the
    # one another window was writing.
    start_held_reply(window, STORY)
    reply_id = window.controller.reply_id
    second = Application(tmp_path / "data", engine=ChatEngine(model))  # same folder
    try:
        assert second.store.get_message(reply_id).state == STREAMING
    finally:
        second.shutdown()
    with qtbot.waitSignal(window.controller.replyEnded, timeout=60_000):
        window.stop()
    reply = window.store.get_message(reply_id)
    assert reply.state == CANCELLED and reply.text
