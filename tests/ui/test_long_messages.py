"""Messages of any length keep the window responsive: a million digits without a break, a
10 MB code block and 100,000 lines, as user messages and replies, when a chat is reopened,
while a reply streams and when such a message is sent. Each shows its start with "Show all",
the viewer pages through the whole text, and Copy copies all of it."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from responsiveness import assert_responsive, ui_thread_stalls

from desktop.store import Repro
from desktop.ui.full_text import PAGE_CHARS
from desktop.ui.long_text import PREVIEW_CHARS, PREVIEW_LINES
from desktop.ui.markdown_view import CodeBlock, FittedBrowser

DIGITS = "0123456789" * 100_000  # 1,000,000 characters, no break anywhere
LINES = "".join(f"line {n}: the quick brown fox\n" for n in range(100_000))
_CODE_LINE = "    total = total + compute(alpha, beta, gamma)  # step {}\n"
CODE_BODY = "".join(_CODE_LINE.format(n) for n in range(158_000))  # 9.9 MB
CODE = f"Here is the program:\n\n```python\n{CODE_BODY}```\n"
HUGE = {"digits": DIGITS, "code": CODE, "lines": LINES}

REPRO = Repro(model="smollm2-135m-instruct", manifest_sha256="0" * 64, device="cpu",
              sampling={}, seed=1, prompt_tokens=10, context_length=8192)


def test_the_texts_are_as_large_as_they_claim():
    assert len(DIGITS) == 1_000_000 and DIGITS.isdigit()
    assert 9_500_000 < len(CODE.encode()) < 10_000_000  # just under the store's limit
    assert LINES.count("\n") == 100_000


def later(action) -> None:
    """Run ``action`` from the event loop, while the responsiveness probe watches."""
    QTimer.singleShot(30, action)


def copied_by(button) -> str:
    button.click()
    return QGuiApplication.clipboard().text()


def test_reopening_a_chat_of_huge_messages(qtbot, window):
    store = window.store
    chat = store.create_conversation("Huge")
    for role, text in (("user", DIGITS), ("assistant", CODE), ("user", LINES),
                       ("assistant", "A short answer.")):
        store.add_message(chat.id, role, text)
    window.refresh_conversations()

    later(lambda: window.open_conversation(chat.id))
    assert_responsive(ui_thread_stalls(qtbot, 1500), "opening the chat")
    widgets = window.view.widgets()
    assert [w.message.text for w in widgets] == [CODE, LINES, "A short answer."]
    assert window.view.earlier_button.isVisible()  # the digits are one page further up
    later(window.view.show_earlier)
    assert_responsive(ui_thread_stalls(qtbot, 1000), "building the earlier page")
    digits, code, lines, short = window.view.widgets()

    assert digits.more_row.isVisible() and digits.show_all_button.isVisible()
    assert digits.more_label.text() == f"Showing {PREVIEW_CHARS:,} of 1,000,000 characters."
    assert isinstance(digits.content, FittedBrowser)
    assert digits.content.toPlainText() == DIGITS[:PREVIEW_CHARS]
    assert lines.content.toPlainText() == "".join(LINES.splitlines(True)[:PREVIEW_LINES])[:-1]
    [block] = code.content.findChildren(CodeBlock)
    assert CODE_BODY.startswith(block.code) and len(block.code) < PREVIEW_CHARS
    assert not short.more_row.isVisible()
    assert not digits.edit_button.isEnabled()  # too long for an edit box; Copy takes it
    assert digits.bubble.width() <= window.view.viewport().width()

    # Copy takes the whole message, and the code block's Copy the whole block.
    assert copied_by(digits.copy_button) == DIGITS
    assert copied_by(lines.copy_button) == LINES
    assert copied_by(block.copy_button) == CODE_BODY[:-1]

    # The viewer shows every character, a page at a time.
    later(digits.show_all_button.click)
    assert_responsive(ui_thread_stalls(qtbot, 1000), "opening the viewer")
    viewer = digits.full_text_dialog
    assert viewer is not None and viewer.isVisible()
    assert viewer.page_count == 1_000_000 // PAGE_CHARS
    assert viewer.view.toPlainText() == DIGITS[:PAGE_CHARS]
    later(viewer.next_button.click)
    later(lambda: viewer.page_box.setValue(viewer.page_count))
    assert_responsive(ui_thread_stalls(qtbot, 1000), "paging")
    assert viewer.view.toPlainText() == DIGITS[-PAGE_CHARS:]
    assert viewer.position_label.text() == \
        f"Characters {1_000_000 - PAGE_CHARS + 1:,}–1,000,000 of 1,000,000"
    assert copied_by(viewer.copy_button) == DIGITS
    viewer.close()
    qtbot.waitUntil(lambda: digits.full_text_dialog is None)


@pytest.mark.parametrize("kind", sorted(HUGE))
def test_a_huge_reply_streams_without_freezing_the_window(qtbot, window, kind):
    text = HUGE[kind]
    store = window.store
    chat = store.create_conversation("Streaming")
    store.add_message(chat.id, "user", "Go on.")
    reply = store.begin_reply(chat.id, REPRO)
    window.refresh_conversations()
    window.open_conversation(chat.id)
    # The controller sends the whole reply so far at most every 50 ms; here 40 updates
    # bring it to its full length.
    step = len(text) // 40 + 1
    sent = [0]

    def grow() -> None:
        sent[0] = min(len(text), sent[0] + step)
        window.controller.replyProgress.emit(chat.id, reply.message_id, text[:sent[0]])
        if sent[0] == len(text):
            ticker.stop()

    ticker = QTimer()
    ticker.setInterval(50)
    ticker.timeout.connect(grow)
    ticker.start()
    stalls = ui_thread_stalls(qtbot, 10_000, until=lambda: sent[0] == len(text))
    ticker.stop()
    assert sent[0] == len(text)
    assert_responsive(stalls, f"streaming {kind}")
    shown = window.view.widgets()[-1]
    assert shown.message.text == text and shown.more_row.isVisible()
    assert shown.more_label.text().endswith(f"of {len(text):,} characters.")


@pytest.mark.parametrize("kind", sorted(HUGE))
def test_pasting_and_sending_a_huge_message_keeps_the_window_responsive(qtbot, window, kind):
    text = HUGE[kind]
    QGuiApplication.clipboard().setText(text)
    window.composer.input.setPlainText("Please read this:")
    later(window.composer.input.paste)
    assert_responsive(ui_thread_stalls(qtbot, 1000), f"pasting {kind}")
    # Held beside the box, where it costs nothing to show, and sent after the typed text.
    assert window.composer.input.toPlainText() == "Please read this:"
    assert window.composer.paste_label.text() == f"Pasted text: {len(text):,} characters"
    assert window.composer.text == f"Please read this:\n\n{text}"
    later(window.composer.send_button.click)
    assert_responsive(ui_thread_stalls(qtbot, 1000), f"sending {kind}")
    expected = f"your message is {len(window.composer.text):,} characters"
    assert expected in window.banner.label.text()  # too long for the model's context
    assert window.store.list_conversations() == []  # nothing half-stored
    assert window.composer.pasted == text  # the draft stays
    window.composer.remove_paste_button.click()
    assert window.composer.text == "Please read this:" and not window.composer.paste_row.isVisible()


def test_typing_and_sending_in_a_chat_of_100k_digit_messages(qtbot, window):
    # 100,000 digits froze the window for 8.7 s; such messages also fit the model's
    # character bound, so the context meter has to tokenize them (in its own thread).
    store = window.store
    chat = store.create_conversation("Digits")
    for n in range(3):
        store.add_message(chat.id, "user", DIGITS[:100_000] + str(n))
        store.add_message(chat.id, "assistant", "That is a long number.")
    window.refresh_conversations()
    later(lambda: window.open_conversation(chat.id))
    later(lambda: window.composer.input.setPlainText("And now a short question."))
    assert_responsive(ui_thread_stalls(qtbot, 1500), "opening and typing")
    qtbot.waitUntil(lambda: "left out" in window.status.notice_label.text(), timeout=30_000)
    with qtbot.waitSignal(window.controller.replyStarted, timeout=60_000):
        later(window.composer.send_button.click)  # the meter's plan is reused
        stalls = ui_thread_stalls(qtbot, 300)
    window.stop()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=60_000)
    assert stalls.work < 0.100, f"sending took {stalls.work * 1000:.0f} ms of the UI thread"
    assert window.store.messages(chat.id)[-2].text == "And now a short question."
