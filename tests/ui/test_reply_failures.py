"""A reply that fails midway ends its card in a failed state with the reason, the reason is
stored, and a restart shows it; nothing is left "Generating…" and no traceback is printed.

The fault is real: the data folder is a small tmpfs, filled to the last byte by the engine
thread the moment the first piece of the reply is handed to the window, so every write of
the reply after that meets a full disk, whatever the speed of the machine.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.engine import Model
from desktop.store import ERROR, STREAMING, ChatStore
from desktop.ui.app import Application
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.controller import RETRY_MS
from desktop.ui.prefs import Preferences

LONG = ChatSettings(overrides={"temperature": 0.0, "max_new_tokens": 200,
                               "repetition_penalty": 1.0})


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs (skipped where mounting is not permitted)."""
    point = tmp_path / "disk"
    point.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)],
                              capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small file system")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    yield point
    subprocess.run(["umount", str(point)], check=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; the file that does it."""
    ballast = folder / "ballast"
    with ballast.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    with ballast.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0")
    return ballast


def open_app(folder: Path, model: Model) -> Application:
    from desktop.engine import ChatEngine

    Preferences(folder).language = "en"
    application = Application(folder, engine=ChatEngine(model))
    application.start()
    return application


def test_a_full_disk_mid_reply_fails_the_card_stores_the_reason_and_survives_a_restart(
        qtbot, qapp, model, small_disk, caplog, capfd):
    app = open_app(small_disk, model)
    window = app.window
    window.apply_chat_settings(LONG)
    ballast: list[Path] = []

    def fill_at_first_piece(job_id: int, piece: str) -> None:  # in the engine thread
        if not ballast:
            ballast.append(fill(small_disk))

    app.controller._worker.piece.connect(fill_at_first_piece, Qt.ConnectionType.DirectConnection)
    try:
        window.composer.input.setPlainText("Tell me a long story about a lighthouse.")
        with qtbot.waitSignal(window.controller.replyEnded, timeout=120_000) as ended:
            window.composer.send_button.click()
        end = ended.args[0]
        assert ballast, "the disk was never filled"
        assert end.outcome == "failed"
        assert "the disk is full; free some space and try again" in end.error
        conversation_id, reply_id = end.conversation_id, end.message_id

        # The card says what happened, keeps what was shown, and offers the usual actions.
        card = window.view.widgets()[-1]
        assert card.message.id == reply_id and card.message.state == ERROR
        assert card.meta_label.text() == f"Error: {end.error}"
        assert card.meta_label.objectName() == "errorLabel"
        assert card.message.text == end.text and end.text
        assert card.action_bar.isVisible() and card.regenerate_button.isVisible()
        assert not window.controller.generating and window.composer.send_button.isVisible()
        assert f"The reply failed: {end.error}" == window.banner.label.text()
        window.grab().save(str(small_disk.parent / "failed-reply.png"))
        # The disk refused the failure too: it is kept and offered again...
        assert window.store.get_message(reply_id).state == STREAMING
        # ...and stored as soon as there is room.
        ballast[0].unlink()
        qtbot.waitUntil(lambda: window.store.get_message(reply_id).state == ERROR,
                        timeout=RETRY_MS * 5)
        stored = window.store.get_message(reply_id)
        assert stored.error == end.error and stored.text == end.text
    finally:
        if ballast and ballast[0].exists():
            ballast[0].unlink()
        window.close()
        app.shutdown()

    # No traceback anywhere: the full disk is the user's to fix, not a bug.
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in capfd.readouterr().err

    # After a restart the reply still says why it failed, not that the app closed.
    app = open_app(small_disk, model)
    try:
        window = app.window
        window.open_conversation(conversation_id)
        card = window.view.widgets()[-1]
        assert card.message.id == reply_id and card.message.state == ERROR
        assert card.meta_label.text() == f"Error: {end.error}"
        assert "app closed" not in card.meta_label.text()
    finally:
        window.close()
        app.shutdown()


def test_a_failure_the_disk_refuses_is_stored_when_the_window_closes(
        qtbot, qapp, model, small_disk):
    app = open_app(small_disk, model)
    window = app.window
    window.apply_chat_settings(LONG)
    ballast: list[Path] = []
    app.controller._worker.piece.connect(
        lambda job_id, piece: ballast or ballast.append(fill(small_disk)),
        Qt.ConnectionType.DirectConnection)
    window.composer.input.setPlainText("Describe the sea in many words.")
    with qtbot.waitSignal(window.controller.replyEnded, timeout=120_000) as ended:
        window.composer.send_button.click()
    end = ended.args[0]
    assert end.outcome == "failed"
    ballast[0].unlink()  # room again, and the window closes before any retry is due
    window.close()
    app.shutdown()
    with ChatStore.open(small_disk) as store:
        reply = store.get_message(end.message_id)
    assert reply.state == ERROR and reply.error == end.error and reply.text == end.text


def test_a_reply_that_cannot_even_start_leaves_no_card_generating(qtbot, window, caplog):
    # Settings a newer version or an import left out of range are refused before anything
    # is stored, with the setting's name and range, and the banner never widens the window.
    window.apply_chat_settings(ChatSettings(overrides={"seed": 10 ** 400}))
    window.composer.input.setPlainText("Hello")
    window.composer.send_button.click()
    assert not window.controller.generating
    assert window.store.list_conversations() == []
    text = window.banner.label.text()
    assert text.startswith("seed = ") and "out of range" in text
    assert len(max(text.split(), key=len)) <= 65
    assert window.minimumSizeHint().width() < 1000
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
