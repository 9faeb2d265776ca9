"""``python -m export SOURCE`` (and ``onnxchat export``): export a model folder.

Bad input ends with one line on stderr that says what is wrong and what to do, and a
non-zero exit status; ``--debug`` adds the traceback and the libraries' own output.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType

from export.errors import ExportError
from export.progress import Progress
from export.recipes import AUTO_RECIPE, DEFAULT_RECIPE, RECIPES

EXIT_BUG = 1
EXIT_INTERRUPTED = 130
#: The command's name in its usage and error lines when run as a module (the window's export
#: dialog reads its error line by it); ``onnxchat export`` passes its own.
PROG = "python -m export"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The export's options; ``prog`` is the command as the user typed it (``onnxchat
    export`` names itself in its usage and errors)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export a language model to an OnnxChat model folder (ONNX, quantized, "
        "validated).",
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="`default` (SmolLM2-135M-Instruct), a Hugging Face model folder, a .gguf file, "
        "or a hub id (org/name) already in the local Hugging Face cache",
    )
    parser.add_argument(
        "--quant",
        choices=[AUTO_RECIPE, *RECIPES],
        default=AUTO_RECIPE,
        help=f"quantization recipe (default {AUTO_RECIPE}: the fastest recipe that passes the "
        "quality gate, tried in order: a GGUF file's own blocks, int8-fused, fp32-fused; "
        f"{DEFAULT_RECIPE} then fp32 for a family the fused graph cannot express): "
        + "; ".join(f"{name}: {recipe.description}" for name, recipe in RECIPES.items()),
    )
    parser.add_argument("--name", help="model folder name (default: from the source)")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder that receives the model folder (default: $ONNXCHAT_MODELS_DIR, else "
        "the checkout's models/)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing model folder of that name"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="keep the model even if it fails the validation gate (recorded in the manifest)",
    )
    parser.add_argument(
        "--progress-json",
        action="store_true",
        help="print progress as one JSON object per line on stdout",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and the libraries' output"
    )
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return int(exc.code or 0)
    # The app works offline: never let a library wait on the Hugging Face hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.debug:
        # transformers' GGUF loader draws a bare tqdm bar ("Converting and de-quantizing GGUF
        # tensors") into the output the window reads, out of reach of its disable_progress_bar();
        # tqdm takes TQDM_* defaults once, when first imported (by the gguf package, before any
        # library is quieted), so this must come before the pipeline's imports.
        os.environ.setdefault("TQDM_DISABLE", "1")
    from export.pipeline import ExportSettings, export_model

    _interrupt_on_sigterm()
    progress = Progress.for_cli(args.progress_json)
    settings = ExportSettings(
        source=args.source,
        recipe=args.quant,
        name=args.name,
        overwrite=args.overwrite,
        force=args.force,
        debug=args.debug,
    )
    if args.out is not None:
        settings.out_dir = args.out
    try:
        result = export_model(settings, progress)
    except ExportError as exc:
        return _fail(progress, prog, str(exc), exc.exit_code, args.debug)
    except KeyboardInterrupt:
        return _fail(progress, prog, "Interrupted: nothing was kept.", EXIT_INTERRUPTED,
                     args.debug)
    except Exception as exc:
        message = f"Export failed unexpectedly: {type(exc).__name__}: {exc}".splitlines()[0]
        if not args.debug:
            message += " (run again with --debug for the details)"
        return _fail(progress, prog, message, EXIT_BUG, args.debug)
    validation = result.validation
    if validation.forced:
        print(
            f"warning: {result.path.name} failed the quality gate and was kept because of "
            f"--force: {'; '.join(validation.failures())}",
            file=sys.stderr,
        )
    return 0


def _interrupt_on_sigterm() -> None:
    """A GUI cancels an export by terminating its process: treat SIGTERM like Ctrl-C so the
    partial folder is removed on the way out (a signal handler needs the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _fail(progress: Progress, prog: str, message: str, code: int, debug: bool) -> int:
    """Print the failure as argparse prints a usage error, so that every error line of the
    command starts the same: ``onnxchat export: error: …``."""
    if debug:
        traceback.print_exc()
    progress.failed(message)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code
