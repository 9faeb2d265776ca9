"""``onnxchat history``: list, search, export and import the chat history from a terminal.

A thin layer over :mod:`desktop.store`; safe to run beside open windows and terminal chats
(their replies in progress are left alone). Like every front end it tells the user, once, on
standard error, when a damaged history file was moved aside.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path

from desktop.errors import UserError
from desktop.paths import data_dir
from desktop.store import ChatStore
from desktop.text import one_line


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``history`` and its subcommands; each sets ``func(args) -> exit code``."""
    history = subparsers.add_parser("history", help="list, search, export or import chats",
                                    description="List, search, export or import the chat "
                                    "history.")
    # SUPPRESS: a --data-dir given to the main command is not overwritten by this default.
    data_dir_option = {"default": argparse.SUPPRESS, "metavar": "DIR",
                       "help": "the data folder (default: $ONNXCHAT_DATA_DIR or the "
                               "platform's user data folder)"}
    history.add_argument("--data-dir", **data_dir_option)
    commands = history.add_subparsers(dest="history_command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="list conversations, most recent first")
    listing.set_defaults(func=run_list)

    search = commands.add_parser("search", help="search message text")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--limit", type=int, default=50, help="most hits to show (50)")
    search.set_defaults(func=run_search)

    export = commands.add_parser("export", help="write conversations to Markdown or JSON")
    export.add_argument("out", metavar="OUT", help="output file, or - for standard output")
    export.add_argument("--format", choices=("md", "json"),
                        help="md (readable) or json (lossless, for import); default: from "
                             "OUT's extension, else md")
    export.add_argument("--conversation", metavar="ID", action="append",
                        help="export only this conversation (repeatable; default: all)")
    export.set_defaults(func=run_export)

    importing = commands.add_parser("import", help="import a JSON history file")
    importing.add_argument("file", metavar="FILE")
    importing.set_defaults(func=run_import)

    for command in (listing, search, export, importing):
        command.add_argument("--data-dir", **data_dir_option)
    return history


def run_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        conversations = store.list_conversations()
    for c in conversations:
        print(f"{c.id}  {c.updated:%Y-%m-%d %H:%M}  {one_line(c.title)}")
    if not conversations:
        print("No conversations yet.", file=sys.stderr)
    return 0


def run_search(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UserError("--limit must be at least 1.")
    with _open(args) as store:
        hits = store.search(args.query, limit=args.limit)
    for hit in hits:
        snippet = one_line(" ".join(hit.snippet.split()))
        print(f"{hit.conversation_id}  {hit.message_id}  {snippet}")
    if not hits:
        print("No messages match.", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    fmt = args.format or ("json" if args.out.lower().endswith(".json") else "md")
    with _open(args) as store:
        if fmt == "json":
            data = store.export_json(args.conversation)
        else:
            data = store.export_markdown(args.conversation).encode("utf-8")
    if args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_atomically(Path(args.out), data)
    return 0


def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}.") from exc
    with _open(args) as store:
        report = store.import_json(data)
    imported, skipped = len(report.imported), len(report.skipped)
    print(f"Imported {imported} conversation{'' if imported == 1 else 's'}; skipped {skipped} "
          "already in the history.")
    return 0


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: never a half-written file.
    A link is written through (its target is replaced, the link kept), an existing file keeps
    its permissions, and a target that is not a regular file (a device, a pipe) is written
    into as it is: renaming over it would replace it with a file."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise UserError(f"Cannot write {path}: it is a folder; name a file in it.")
        try:
            with open(path, "wb") as out:
                out.write(data)
        except OSError as exc:
            raise UserError(f"Cannot write {path}: {exc.strerror}.") from exc
        return
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"Cannot write {path}: the folder {folder} does not exist.")
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {exc.strerror}.") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temp, stat.S_IMODE(mode))
        else:  # what open() would have created: 0666 less the umask
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise UserError(f"Cannot write {path}: {exc.strerror}.") from exc


def _open(args: argparse.Namespace) -> ChatStore:
    store = ChatStore.open(data_dir(getattr(args, "data_dir", None)))
    try:
        notice = store.take_notice()
    except BaseException:
        store.close()
        raise
    if notice:
        print(f"onnxchat: {notice}", file=sys.stderr)
    return store
