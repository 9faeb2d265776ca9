"""The ``onnxchat`` command: the window by default, plus chat, models, history, bench, export.

Thin on purpose: each subcommand lives in its own module and raises
:class:`desktop.errors.UserError` for anything the user can fix; this module turns those into
one line on stderr and a non-zero exit (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from desktop import __version__
from desktop.errors import UserError

log = logging.getLogger("onnxchat")


def _models_register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list installed models")
    parser.add_argument("--verify", action="store_true",
                        help="recompute every file's sha256 against the manifest")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_models_run)


def _models_run(args: argparse.Namespace) -> int:
    from desktop.engine import list_models, verify_files
    from desktop.paths import model_dirs

    models = list_models()
    if not models:
        where = ", ".join(str(d) for d in model_dirs())
        print(f"no models installed (searched {where}); "
              "prepare the default one with `onnxchat export default`")
        return 0
    rows, failed = [], False
    for entry in models:
        m = entry.manifest
        row = {"name": entry.name, "path": str(entry.path), "problem": entry.problem}
        if m is not None:
            v = m.validation
            row |= {"recipe": m.recipe, "size_mb": round(m.size_bytes / 1e6, 1),
                    "perplexity_ratio": v.get("perplexity_ratio"),
                    "top1_agreement": v.get("top1_agreement"), "passed": v.get("passed")}
            if args.verify:
                problems = verify_files(m)
                row["verified"] = not problems
                if problems:
                    row["problem"] = "; ".join(problems)
        failed |= bool(row["problem"])
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if r.get("recipe"):
                ratio = r["perplexity_ratio"]
                top1 = r["top1_agreement"]
                quality = (f"ppl ×{ratio:.3f}, top-1 {top1:.1%}" if isinstance(ratio, float)
                           and isinstance(top1, float) else "not validated")
                status = "" if r.get("passed", True) else " (failed validation, kept with --force)"
                verified = {True: ", files verified", False: ""}.get(r.get("verified"), "")
                print(f"{r['name']:<28} {r['recipe']:<10} {r['size_mb']:>8.1f} MB  "
                      f"{quality}{status}{verified}\n  {r['path']}")
            if r["problem"]:
                print(f"  problem: {r['problem']}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
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
    from desktop import bench, soak, terminal
    from desktop.server import command as serve

    terminal.register(sub)
    _models_register(sub)
    bench.register(sub)
    soak.register(sub)
    serve.register(sub)
    try:
        history = importlib.import_module("desktop.history_cmd")
    except ImportError:  # pragma: no cover - part of the same distribution
        history = None
    if history is not None:
        history.register(sub)
    sub.add_parser("export", help="convert a model to a validated ONNX folder "
                   "(see `onnxchat export --help`; needs the export extra)")
    return parser


def _run_export(argv: list[str]) -> int:
    try:
        export_cli = importlib.import_module("export.cli")
    except ImportError:
        raise UserError(
            "the export step is not installed in this copy of OnnxChat; install it with "
            "`pip install 'onnxchat[export]'` (the packaged app ships only the chat)"
        ) from None
    return int(export_cli.main(argv))


def _run_gui(args: argparse.Namespace) -> int:
    try:
        app = importlib.import_module("desktop.ui.app")
    except ImportError as exc:
        raise UserError(f"the window cannot start: {exc}; use `onnxchat chat` for the "
                        "terminal chat") from None
    return int(app.main(args))


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
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.data_dir:
            import os

            os.environ["ONNXCHAT_DATA_DIR"] = args.data_dir
        if args.command is None:
            return _run_gui(args)
        return int(args.func(args))
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
