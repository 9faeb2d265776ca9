"""Damaged files and a hostile environment: corrupt, read-only, full disk, locked."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop.errors import StoreError
from desktop.store import ChatStore, Repro


def _fill(data_dir: Path, count: int = 200) -> str:
    with ChatStore.open(data_dir) as store:
        chat = store.create_conversation("Big")
        for index in range(count):
            store.add_message(chat.id, "user", f"message {index} " + "lorem ipsum " * 30)
    return chat.id


def test_garbage_file_is_moved_aside(data_dir: Path) -> None:
    data_dir.mkdir()
    garbage = os.urandom(1000) + b"this is not a database" * 100
    (data_dir / "chats.sqlite3").write_bytes(garbage)

    with ChatStore.open(data_dir) as store:
        moved = list(data_dir.glob("chats.sqlite3.corrupt-????????-??????"))
        assert len(moved) == 1
        assert moved[0].name.startswith("chats.sqlite3.corrupt-2")  # a timestamp
        assert moved[0].read_bytes() == garbage
        notice = store.take_notice()
        assert str(moved[0]) in notice and "\n" not in notice
        assert store.take_notice() is None  # told once
        # The fresh store works.
        chat = store.create_conversation()
        store.add_message(chat.id, "user", "fresh start")
        assert [m.text for m in store.messages(chat.id)] == ["fresh start"]
    with ChatStore.open(data_dir) as store:
        assert store.take_notice() is None


def test_truncated_database_is_moved_aside(data_dir: Path) -> None:
    _fill(data_dir)
    path = data_dir / "chats.sqlite3"
    assert not (data_dir / "chats.sqlite3-wal").exists()  # all of it is in the main file
    os.truncate(path, path.stat().st_size // 2)
    truncated = path.read_bytes()

    with ChatStore.open(data_dir) as store:
        assert store.take_notice() is not None
        assert store.list_conversations() == []
    (moved,) = data_dir.glob("chats.sqlite3.corrupt-????????-??????")
    assert moved.read_bytes() == truncated


def test_empty_file_becomes_a_fresh_store(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "chats.sqlite3").write_bytes(b"")
    with ChatStore.open(data_dir) as store:
        assert store.take_notice() is None
        store.create_conversation()


def test_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StoreError, match=r"Cannot create the chat history folder.*--data-dir"):
        ChatStore.open(tmp_path / "a-file" / "data")


@contextlib.contextmanager
def _held_by_another_process(data_dir: Path) -> Iterator[Callable[[], None]]:
    """Another process holds the write lock until the yielded ``release()`` is called."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "conn.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n",
         str(data_dir / "chats.sqlite3")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def release() -> None:
        holder.stdin.close()
        holder.wait(timeout=30)

    try:
        assert holder.stdout.readline() == "locked\n"
        yield release
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()


def test_locked_by_another_process(data_dir: Path) -> None:
    chat_id = _fill(data_dir, count=1)
    with ChatStore.open(data_dir, busy_timeout_s=0.2) as store, \
            _held_by_another_process(data_dir) as release:
        assert len(store.messages(chat_id)) == 1  # WAL: reading still works
        with pytest.raises(StoreError, match="another program is using it"):
            store.add_message(chat_id, "user", "blocked")
        release()
        store.add_message(chat_id, "user", "after the lock")
        assert [m.text for m in store.messages(chat_id)][-1] == "after the lock"


def test_a_streaming_reply_does_not_wait_for_another_process(data_dir: Path,
                                                             repro: Repro) -> None:
    # Decoding must not stall behind another process's write (an import, say): the commit
    # is skipped, and made with the next piece once the file is free.
    chat_id = _fill(data_dir, count=1)
    clock = [0.0]
    with ChatStore.open(data_dir, busy_timeout_s=60) as store:
        writer = store.begin_reply(chat_id, repro, clock=lambda: clock[0])
        with _held_by_another_process(data_dir) as release:
            clock[0] += 1
            assert writer.append("held up") is False  # at once: not after 60 s, no error
            release()
            clock[0] += 1
            assert writer.append(", then saved") is True
        assert store.get_message(writer.message_id).text == "held up, then saved"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount small RAM file systems: a real full disk and a real read-only folder.

    Running as root, file permissions stop no write; a read-only mount does. Skipped where
    mounting is not permitted (not root, no mount command, a restricted container).
    """
    mounted: list[Path] = []

    def mount(size: str = "1m") -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                   str(point)], capture_output=True, text=True)
        except FileNotFoundError:
            pytest.skip("no mount command: cannot make a small or read-only file system")
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", str(point)], check=True)


def _remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)


def test_read_only_folder_without_a_store(tmpfs: Callable[..., Path]) -> None:
    point = tmpfs()
    _remount_read_only(point)
    with pytest.raises(StoreError, match=r"not writable.*--data-dir or ONNXCHAT_DATA_DIR"):
        ChatStore.open(point)


def test_read_only_folder_with_a_store(tmpfs: Callable[..., Path]) -> None:
    point = tmpfs()
    chat_id = _fill(point, count=3)
    before = (point / "chats.sqlite3").read_bytes()
    _remount_read_only(point)
    with pytest.raises(StoreError, match="not writable"):
        ChatStore.open(point)
    assert (point / "chats.sqlite3").read_bytes() == before
    subprocess.run(["mount", "-o", "remount,rw", str(point)], check=True)
    with ChatStore.open(point) as store:
        assert len(store.messages(chat_id)) == 3


def test_full_disk_keeps_committed_data(tmpfs: Callable[..., Path]) -> None:
    point = tmpfs("1m")
    with ChatStore.open(point) as store:
        chat = store.create_conversation("Full")
        kept = [store.add_message(chat.id, "user", f"kept {i}").id for i in range(5)]
        ballast = point / "ballast"
        with ballast.open("wb", buffering=0) as out, contextlib.suppress(OSError):
            while True:  # until the disk is full
                out.write(b"\0" * 4096)
        with pytest.raises(StoreError, match="the disk is full; free some space"):
            for _ in range(50):
                store.add_message(chat.id, "user", "x" * 20_000)
        assert [m.id for m in store.messages(chat.id)][:5] == kept
    # Everything committed before the failure is still there, and the store works again.
    ballast.unlink()
    with ChatStore.open(point) as store:
        ids = [m.id for m in store.messages(chat.id)]
        assert ids[:5] == kept
        store.add_message(chat.id, "user", "space again")
        assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copy = point.parent / "copy.sqlite3"
    shutil.copy(point / "chats.sqlite3", copy)
    assert sqlite3.connect(copy).execute("PRAGMA quick_check").fetchone()[0] == "ok"
