"""``onnxchat history``: the subcommands through their argument parser, on a real store."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.errors import UserError
from desktop.history_cmd import register
from desktop.store import ChatStore, InvalidImportError, NotFoundError


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="onnxchat")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def filled(data_dir: Path) -> tuple[str, str]:
    with ChatStore.open(data_dir) as store:
        first = store.create_conversation("Birds")
        store.add_message(first.id, "user", "Tell me about puffins")
        second = store.create_conversation("Fish")
        store.add_message(second.id, "user", "Tell me about salmon")
    return first.id, second.id


def test_list_and_search(filled: tuple[str, str], data_dir: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    birds, fish = filled
    assert run("history", "--data-dir", str(data_dir), "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [fish, birds]
    assert lines[0].endswith("  Fish")

    assert run("history", "search", "puffin", "--data-dir", str(data_dir)) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{birds}  ") and "[puffins]" in line
    assert run("history", "--data-dir", str(data_dir), "search", '"NEAR(*') == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "No messages match" in captured.err


def test_data_dir_from_the_environment(filled: tuple[str, str], data_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ONNXCHAT_DATA_DIR", str(data_dir))
    assert run("history", "list") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_export_and_import(filled: tuple[str, str], data_dir: Path, tmp_path: Path,
                           capfd: pytest.CaptureFixture[str]) -> None:
    birds, _ = filled
    out = tmp_path / "out"
    out.mkdir()
    assert run("history", "--data-dir", str(data_dir), "export", str(out / "all.json")) == 0
    assert run("history", "--data-dir", str(data_dir), "export", "--conversation", birds,
               str(out / "birds.md")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["all.json", "birds.md"]  # no temp files
    assert json.loads((out / "all.json").read_bytes())["format"] == "onnxchat-history"
    assert (out / "birds.md").read_text().startswith("# Birds\n")

    assert run("history", "--data-dir", str(data_dir), "export", "--format", "json", "-") == 0
    assert capfd.readouterr().out.encode() == (out / "all.json").read_bytes()

    other = tmp_path / "other"
    assert run("history", "--data-dir", str(other), "import", str(out / "all.json")) == 0
    assert "Imported 2 conversations; skipped 0" in capfd.readouterr().out
    assert run("history", "--data-dir", str(other), "import", str(out / "all.json")) == 0
    assert "Imported 0 conversations; skipped 2" in capfd.readouterr().out
    with ChatStore.open(other) as store:
        assert store.export_json() == (out / "all.json").read_bytes()
    assert run("history", "--data-dir", str(data_dir), "export", "--conversation", birds,
               str(tmp_path / "birds.json")) == 0
    assert run("history", "--data-dir", str(tmp_path / "third"), "import",
               str(tmp_path / "birds.json")) == 0
    assert "Imported 1 conversation; skipped 0" in capfd.readouterr().out


def test_bad_input_is_a_user_error(filled: tuple[str, str], data_dir: Path,
                                   tmp_path: Path) -> None:
    base = ("history", "--data-dir", str(data_dir))
    with pytest.raises(NotFoundError, match="No conversation 'nope'"):
        run(*base, "export", "--conversation", "nope", str(tmp_path / "x.md"))
    with pytest.raises(UserError, match=r"folder .* does not exist"):
        run(*base, "export", str(tmp_path / "missing" / "x.md"))
    with pytest.raises(UserError, match=r"Cannot read .*missing\.json"):
        run(*base, "import", str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_bytes(b"\xff")
    with pytest.raises(InvalidImportError, match="not valid UTF-8"):
        run(*base, "import", str(tmp_path / "bad.json"))
    with pytest.raises(UserError, match="--limit"):
        run(*base, "search", "x", "--limit", "0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "data"]


def test_export_replaces_a_file_whole(filled: tuple[str, str], data_dir: Path,
                                      tmp_path: Path) -> None:
    target = tmp_path / "history.md"
    target.write_text("old content that is much longer than nothing " * 1000)
    assert run("history", "--data-dir", str(data_dir), "export", str(target)) == 0
    text = target.read_text()
    assert text.startswith("# ") and "old content" not in text


def test_export_writes_through_links_pipes_and_keeps_permissions(
        filled: tuple[str, str], data_dir: Path, tmp_path: Path) -> None:
    """Renaming the finished file over the target must not replace what the target is: a
    link stays a link (its file gets the export), a pipe gets the data, a file keeps its
    mode, and a folder is refused in one line."""
    import os
    import stat
    import threading

    real = tmp_path / "real.md"
    real.write_text("old")
    real.chmod(0o644)
    link = tmp_path / "link.md"
    link.symlink_to(real)
    assert run("history", "--data-dir", str(data_dir), "export", str(link)) == 0
    assert link.is_symlink() and real.read_text().startswith("# ")
    assert stat.S_IMODE(real.stat().st_mode) == 0o644

    pipe = tmp_path / "pipe.md"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()
    assert run("history", "--data-dir", str(data_dir), "export", str(pipe)) == 0
    reader.join(10)
    assert stat.S_ISFIFO(pipe.stat().st_mode) and received[0].startswith(b"# ")

    with pytest.raises(UserError, match="it is a folder; name a file in it"):
        run("history", "--data-dir", str(data_dir), "export", str(tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_an_import_with_a_number_too_large_is_refused_in_one_line(
        filled: tuple[str, str], data_dir: Path, tmp_path: Path) -> None:
    exported = tmp_path / "all.json"
    assert run("history", "--data-dir", str(data_dir), "export", str(exported)) == 0
    document = json.loads(exported.read_text(encoding="utf-8"))
    document["conversations"][0]["sampling"] = {"temperature": 0.5}
    broken = json.dumps(document).replace('"temperature": 0.5', '"temperature": 1e999')
    other = tmp_path / "other"
    with ChatStore.open(other) as store:
        with pytest.raises(InvalidImportError, match="the number 1e999 is too large"):
            store.import_json(broken.encode())
        assert store.list_conversations() == []


def test_a_damaged_file_moved_aside_is_told_once(data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 damaged_history) -> None:
    # Issue #13: `history export` on a truncated file exited 0 with an empty history and
    # said nothing; the window opened afterwards did not tell either.
    damaged_history(data_dir)
    backup = tmp_path / "backup.json"
    assert run("history", "--data-dir", str(data_dir), "export", "--format", "json",
               str(backup)) == 0
    (moved,) = data_dir.glob("chats.sqlite3.corrupt-????????-??????")
    assert capsys.readouterr().err == (
        f"onnxchat: The chat history file was damaged; it was moved to {moved} and a new, "
        "empty history was started.\n")
    assert json.loads(backup.read_bytes())["conversations"] == []
    # Told once: the next start, of any front end, says nothing more.
    assert run("history", "--data-dir", str(data_dir), "list") == 0
    assert capsys.readouterr().err == "No conversations yet.\n"
    with ChatStore.open(data_dir) as store:
        assert store.take_notice() is None


def test_an_import_with_a_bad_setting_is_refused_in_one_line(tmp_path: Path) -> None:
    document = {"format": "onnxchat-history", "format_version": 1, "conversations": [{
        "id": "c1", "title": "Weather", "created": "2025-01-31T12:00:00.000000Z",
        "updated": "2025-01-31T12:00:00.000000Z", "model": None, "system_prompt": "",
        "sampling": {"temperature": "hot"}, "active_leaf_id": None, "messages": []}]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    result = subprocess.run([sys.executable, "-m", "desktop", "history", "--data-dir",
                             str(tmp_path / "data"), "import", str(bad)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr == (
        'onnxchat: error: Cannot import the history file: conversations[0] ("Weather")'
        ".sampling: temperature must be a number, got 'hot'; nothing was imported.\n")
    with ChatStore.open(tmp_path / "data") as store:
        assert store.list_conversations() == []
