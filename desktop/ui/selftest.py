"""``onnxchat --self-test``: prove that this installation can chat, end to end, unattended.

Starts the real window offscreen, loads the default model (or ``--model``), sends a fixed
prompt through the input box and the engine thread, checks that a clean reply arrived, then
reopens the chat store from disk and checks that the conversation was saved — in a history
of its own, removed afterwards, so the user's chats and settings stay as they were. Prints one
summary line; exit status 0 when everything worked. The packaged app's smoke test runs this,
so it needs nothing beyond the runtime dependencies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "What is the capital of France? Answer in one sentence."
# Short and greedy: the same reply every time, in a few seconds on a CPU.
SETTINGS = {"temperature": 0.0, "max_new_tokens": 32, "seed": 0}
LOAD_TIMEOUT_S = 300
REPLY_TIMEOUT_S = 300


class SelfTestError(Exception):
    """A check failed; the message says which."""


def _quiet_offscreen_notes(mode, context, message: str) -> None:
    """Qt's offscreen platform notes that it ignores window size hints; say nothing of it
    and pass every other message on to stderr."""
    if "does not support propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the self-test; print the summary (stdout) or the reason it failed (stderr)."""
    from PySide6.QtCore import qInstallMessageHandler

    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    qInstallMessageHandler(_quiet_offscreen_notes)
    # A history of its own, inside the data folder when one is given (so that folder is
    # proved writable) and removed afterwards: the user's chats and window settings are
    # never touched.
    given = getattr(args, "data_dir", None) or os.environ.get("ONNXCHAT_DATA_DIR")
    try:
        if given:
            Path(given).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".onnxchat-selftest-", dir=given or None))
    except OSError as exc:
        print(f"onnxchat self-test failed: cannot create a history in {given}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        print(_check(folder, getattr(args, "model", None)))
        return 0
    except SelfTestError as exc:
        print(f"onnxchat self-test failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait(timeout_s: float, what: str, **signals) -> tuple[str, tuple]:
    """Run the event loop until one of ``signals`` fires: (its keyword, its arguments)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    received: list[tuple[str, tuple]] = []
    handlers = {}
    for name, signal in signals.items():
        def handler(*values: object, name: str = name) -> None:
            received.append((name, values))
            loop.quit()

        handlers[name] = handler
        signal.connect(handler)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    for name, signal in signals.items():
        signal.disconnect(handlers[name])
    if not received:
        raise SelfTestError(f"{what} took more than {timeout_s:.0f} s")
    return received[0]


def _check(folder: Path, model: str | None) -> str:
    from desktop.engine import resolve_model
    from desktop.errors import UserError
    from desktop.store import COMPLETE, ChatStore
    from desktop.ui.app import Application
    from desktop.ui.chat_settings import ChatSettings

    try:
        model_folder = resolve_model(model)
        app = Application(folder)
    except UserError as exc:
        raise SelfTestError(str(exc)) from None
    started = time.perf_counter()
    try:
        window = app.start(str(model_folder))
        controller = app.controller
        if controller.engine is None:
            outcome, values = _wait(LOAD_TIMEOUT_S, "loading the model",
                                    loaded=controller.modelLoaded,
                                    failed=controller.modelLoadFailed)
            if outcome == "failed":
                raise SelfTestError(f"the model did not load: {values[0]}")
        engine = controller.engine
        assert engine is not None
        window.apply_chat_settings(ChatSettings(overrides=SETTINGS))
        window.composer.input.setPlainText(PROMPT)
        if not window.composer.send_button.isEnabled():
            raise SelfTestError("the Send button stayed disabled with a model loaded")
        window.composer.send_button.click()
        _, (end,) = _wait(REPLY_TIMEOUT_S, "the reply", ended=controller.replyEnded)
        if end.outcome != "finished":
            raise SelfTestError(f"the reply {end.outcome}: {end.error or 'no error text'}")
        text = end.text
        if not text.strip():
            raise SelfTestError("the reply was empty")
        if "\ufffd" in text:
            raise SelfTestError(f"the reply contains broken characters (U+FFFD): {text!r}")
        conversation_id = end.conversation_id
        window.close()  # saves the window state, stops the engine thread, closes the store
    finally:
        app.shutdown()

    with ChatStore.open(folder) as store:
        saved = store.messages(conversation_id)
    roles = [(m.role, m.state) for m in saved]
    if roles != [("user", COMPLETE), ("assistant", COMPLETE)]:
        raise SelfTestError(f"the saved conversation is {roles}, not one question and answer")
    if saved[0].text != PROMPT or saved[1].text != text:
        raise SelfTestError("the conversation read back differs from what was shown")
    stats = end.stats
    elapsed = time.perf_counter() - started
    return (f"onnxchat self-test passed: {engine.model.name} on "
            f"{engine.model.device.describe()}, {stats.new_tokens} tokens at "
            f"{stats.decode_tokens_per_s:.1f} tokens/s, {elapsed:.1f} s in all; conversation "
            f"saved and read back from a new history in {folder.parent}")

