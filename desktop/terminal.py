"""The terminal chat: the same engine as the window, streaming to stdout.

One-shot with ``--prompt`` (the reply streams, the process exits 0), otherwise an interactive
chat with history and slash commands. Ctrl-C stops the current reply, not the program.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from typing import TextIO

from desktop.engine import ChatEngine, SamplingSettings, load_model, resolve_model
from desktop.engine.chat import ReplyStream
from desktop.errors import UserError

HELP = """Commands: /reset (new conversation), /system TEXT (set the system prompt),
/stats (toggle per-reply figures), /help, /exit. Ctrl-C stops a reply; Ctrl-D or /exit quits."""


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Sampling flags shared by ``chat`` and ``bench``; unset ones take the model's defaults."""
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--min-p", type=float)
    parser.add_argument("--repetition-penalty", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-new-tokens", type=int)


def settings_from_args(args: argparse.Namespace, defaults: dict) -> SamplingSettings:
    """The model's sampling defaults overridden by whatever flags were given; validated."""
    base = SamplingSettings.from_dict(defaults)
    changes = {
        name: getattr(args, name)
        for name in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed",
                     "max_new_tokens")
        if getattr(args, name, None) is not None
    }
    return base.with_changes(**changes).validated()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chat", help="chat in the terminal")
    parser.add_argument("--model", help="model name or folder (default: the bundled default)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--prompt", help="answer this one message and exit")
    parser.add_argument("--stats", action="store_true",
                        help="print per-reply figures (JSON on stderr with --prompt)")
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


def _stream(stream: ReplyStream, out: TextIO) -> None:
    for piece in stream:
        out.write(piece)
        out.flush()


def _cancel_on_interrupt(stream: ReplyStream) -> Callable[..., None]:
    """A SIGINT handler that stops ``stream`` instead of the program."""
    return lambda *_: stream.cancel()


def _stats_line(stream: ReplyStream) -> str:
    s = stream.stats
    dropped = f", {len(s.dropped_messages)} old messages dropped" if s.dropped_messages else ""
    return (f"[{s.new_tokens} tokens, {s.decode_tokens_per_s:.1f} tok/s, first token "
            f"{s.time_to_first_token_s * 1000:.0f} ms, stop: {s.stop_reason}{dropped}]")


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
        read_line: Callable[[str], str] = input) -> int:
    model = load_model(resolve_model(args.model), device=args.device, threads=args.threads)
    settings = settings_from_args(args, model.manifest.sampling_defaults)
    engine = ChatEngine(model)
    system = [{"role": "system", "content": args.system}] if args.system else []
    if args.prompt is not None:
        if model.device.reason:  # the interactive chat says it in its greeting instead
            err.write(f"{model.device.reason}; running on CPU\n")
        stream = engine.reply([*system, {"role": "user", "content": args.prompt}], settings)
        _stream(stream, out)
        out.write("\n")
        out.flush()
        if args.stats:
            err.write(json.dumps(stream.stats.to_dict() | {"load_s": model.load_seconds}) + "\n")
        return 0
    return _interactive(engine, settings, system, args.stats, out, err, read_line)


def _interactive(engine: ChatEngine, settings: SamplingSettings, system: list[dict[str, str]],
                 show_stats: bool, out: TextIO, err: TextIO,
                 read_line: Callable[[str], str]) -> int:
    out.write(f"OnnxChat — {engine.model.name} on {engine.model.device.describe()}. "
              "Type /help for commands.\n")
    history: list[dict[str, str]] = []
    while True:
        try:
            line = read_line("\nYou: ")
        except EOFError:
            out.write("\n")
            return 0
        except KeyboardInterrupt:
            out.write("\n(Ctrl-D or /exit to quit)\n")
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command in ("/exit", "/quit"):
                return 0
            if command == "/reset":
                history.clear()
                engine.reset()
                out.write("(new conversation)\n")
            elif command == "/system":
                system[:] = [{"role": "system", "content": rest.strip()}] if rest.strip() else []
                out.write("(system prompt set)\n" if system else "(system prompt cleared)\n")
            elif command == "/stats":
                show_stats = not show_stats
                out.write(f"(stats {'on' if show_stats else 'off'})\n")
            elif command == "/help":
                out.write(HELP + "\n")
            else:
                out.write(f"unknown command {command}; {HELP}\n")
            continue
        history.append({"role": "user", "content": line})
        try:
            stream = engine.reply(system + history, settings)
        except UserError as exc:
            history.pop()
            err.write(f"error: {exc}\n")
            continue
        if stream.plan.dropped:
            out.write(f"(the {len(stream.plan.dropped)} oldest messages no longer fit the "
                      "context and were left out)\n")
        out.write("Assistant: ")
        out.flush()
        previous = signal.signal(signal.SIGINT, _cancel_on_interrupt(stream))
        try:
            _stream(stream, out)
        finally:
            signal.signal(signal.SIGINT, previous)
        if stream.stats.stop_reason == "cancelled":
            out.write(" [stopped]")
        out.write("\n")
        if show_stats:
            out.write(_stats_line(stream) + "\n")
        history.append({"role": "assistant", "content": stream.text})
