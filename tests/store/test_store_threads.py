"""The window's thread reads while the generating thread writes."""

from __future__ import annotations

import threading

from desktop.store import COMPLETE, ChatStore, ReplyStats, Repro


def test_concurrent_writer_and_reader(store: ChatStore, repro: Repro) -> None:
    chat = store.create_conversation()
    turns = 60
    errors: list[BaseException] = []
    done = threading.Event()
    readers_started = [threading.Event(), threading.Event()]
    seen_lengths: list[int] = []

    def write() -> None:
        try:
            for started in readers_started:  # each reader has read the empty chat once
                assert started.wait(timeout=120)
            for turn in range(turns):
                store.add_message(chat.id, "user", f"question {turn}")
                writer = store.begin_reply(chat.id, repro, commit_interval_s=0.0)
                for piece in range(5):
                    writer.append(f"answer {turn}.{piece} ")
                writer.finish(ReplyStats(5, 0.01, 0.05), "eos")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read(started: threading.Event) -> None:
        lengths: list[int] = []
        try:
            finished = False
            while not finished:  # a last read after the writer is done
                finished = done.is_set()
                branch = store.messages(chat.id)
                # Every read is a consistent branch: user/assistant turns, in order.
                for index, message in enumerate(branch):
                    turn = index // 2
                    if index % 2 == 0:
                        assert (message.role, message.text) == ("user", f"question {turn}")
                    else:
                        assert message.role == "assistant"
                        assert message.text in ("", *_prefixes(turn))
                assert not lengths or len(branch) >= lengths[-1]  # never goes back
                lengths.append(len(branch))
                started.set()
                store.search("answer")
        except BaseException as exc:
            errors.append(exc)
        finally:
            started.set()  # never leave the writer waiting
        seen_lengths.extend(lengths)

    threads = [threading.Thread(target=write),
               *(threading.Thread(target=read, args=(started,)) for started in readers_started)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert {0, 2 * turns} <= set(seen_lengths)  # the readers saw the chat grow
    branch = store.messages(chat.id)
    assert len(branch) == 2 * turns
    assert all(m.state == COMPLETE for m in branch)
    assert branch[-1].text == " ".join(f"answer {turns - 1}.{p}" for p in range(5)) + " "


def test_connections_of_finished_threads_are_closed(store: ChatStore) -> None:
    chat = store.create_conversation()
    for turn in range(5):
        thread = threading.Thread(target=store.add_message, args=(chat.id, "user", str(turn)))
        thread.start()
        thread.join()
    # Each new thread's connection closed the finished thread's one: the main thread's
    # and the last thread's remain, not one per thread.
    assert len(store._connections._open) == 2
    assert [m.text for m in store.messages(chat.id)] == ["0", "1", "2", "3", "4"]


def _prefixes(turn: int) -> list[str]:
    return ["".join(f"answer {turn}.{p} " for p in range(n)) for n in range(1, 6)]
