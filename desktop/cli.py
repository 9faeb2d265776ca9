"""The ``onnxchat`` command: the window by default, plus chat, models, history, bench, export.

Thin on purpose: each subcommand lives in its own module and raises
:class:`desktop.errors.UserError` for anything the user can fix; this module turns those into
one line on stderr and a non-zero exit (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from desktop import __version__, hugepages
from desktop.errors import UserError

log = logging.getLogger("onnxchat")


#: The subcommands: name → (module, one-line help). A module is imported only when its command
#: is the one on the command line, so ``--help``, ``history`` and ``models`` start without
#: numpy, ONNX Runtime or Qt. Each module has ``register(subparsers)``, which adds the
#: command's parser with ``set_defaults(func=...)``; one line here adds a command.
COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("desktop.terminal", "chat in the terminal"),
    "models": ("desktop.models_cmd", "list installed models"),
    "history": ("desktop.history_cmd", "list, search, export or import chats"),
    "bench": ("desktop.bench", "measure speed and memory"),
    "soak": ("desktop.soak", "long-session checks (minutes)"),
    "serve": ("desktop.server.command", "serve the model over the OpenAI HTTP API"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with ``command``'s full arguments; the other commands are listed by name and
    help only (their modules are not imported)."""
    parser = argparse.ArgumentParser(
        prog="onnxchat",
        description="Offline chat with local language models. With no command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"onnxchat {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and debug logs (allowed anywhere on the line)")
    parser.add_argument("--data-dir", help="folder for chats and settings (or ONNXCHAT_DATA_DIR)")
    parser.add_argument("--model", help="model to open in the window")
    parser.add_argument(
        "--self-test", action="store_true",
        help="start offscreen, chat once with the default model, exit 0 if it works",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).register(sub)
        else:  # a name in the list; its arguments are parsed once it is the command
            sub.add_parser(name, help=help_text, add_help=False)
    sub.add_parser("export", help="convert a model to a validated ONNX folder "
                   "(see `onnxchat export --help`; needs the export extra)")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Find the command with the light parser, then parse everything with its own.

    ``--model`` and ``--data-dir`` may come before the command too (``onnxchat --model M
    chat``): argparse would let the command's own unset option overwrite them."""
    light = build_parser().parse_known_args(argv)[0]
    args = build_parser(light.command if light.command in COMMANDS else None).parse_args(argv)
    for name, option in (("model", "--model"), ("data_dir", "--data-dir")):
        if getattr(args, name, None) is None:
            setattr(args, name, getattr(light, name))
        value = getattr(args, name)
        if value is not None and not value.strip():
            raise UserError(f"{option} is empty: give "
                            f"{'a model name or folder' if name == 'model' else 'a folder'}, "
                            "or leave the option out")
    return args


def _run_export(argv: list[str]) -> int:
    try:
        export_cli = importlib.import_module("export.cli")
    except ImportError:
        raise UserError(
            "the export step is not installed in this copy of OnnxChat; install it with "
            "`pip install 'onnxchat[export]'` (the packaged app ships only the chat)"
        ) from None
    return int(export_cli.main(argv, prog="onnxchat export"))


def _run_gui(args: argparse.Namespace) -> int:
    try:
        app = importlib.import_module("desktop.ui.app")
    except ImportError as exc:
        raise UserError(f"the window cannot start: {exc}; use `onnxchat chat` for the "
                        "terminal chat") from None
    return int(app.main(args))


#: The commands that run a model in this process (None: the window), whose weights go in huge
#: pages (desktop.hugepages); the others start as they are.
MODEL_COMMANDS = {None, "chat", "serve", "bench", "soak"}
#: Options of the main parser that take a value, so their value is not read as the command.
VALUED_OPTIONS = {"--data-dir", "--model"}


def command_word(argv: list[str]) -> str | None:
    """The subcommand named on the command line, without parsing it (None: the window)."""
    words = iter(argv)
    for word in words:
        if word in VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def run() -> int:
    """The process's entry (the ``onnxchat`` script, ``python -m desktop``, the packaged app):
    a command that runs a model first restarts itself with its weights in huge pages."""
    argv = sys.argv[1:]
    if command_word(argv) in MODEL_COMMANDS and not {"--help", "-h", "--version"} & set(argv):
        hugepages.restart_with_huge_pages()
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"] if argv[:1] != ["export"] else argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if argv == ["--version"]:  # answer before importing the engine (numpy, onnxruntime)
        print(f"onnxchat {__version__}")
        return 0
    try:
        # The export step has its own parser; hand it everything after the word.
        if argv and argv[0] == "export":
            return _run_export(argv[1:])
        args = parse(argv)
        if args.data_dir is not None:
            import os

            os.environ["ONNXCHAT_DATA_DIR"] = args.data_dir
        if args.command is None:
            return _run_gui(args)
        code = int(args.func(args))
        sys.stdout.flush()  # a full disk or a closed pipe is told here, not at exit
        return code
    except UserError as exc:
        if debug:
            log.exception("error")
        print(f"onnxchat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("onnxchat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine's, not a bug: a full disk, a file that is a folder…
        if debug:
            log.exception("error")
        where = f": {exc.filename}" if exc.filename else ""
        print(f"onnxchat: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
