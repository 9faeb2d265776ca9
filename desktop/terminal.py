"""The terminal chat: the same engine and the same history as the window, streaming to stdout.

One-shot with ``--prompt`` (the reply streams, the process exits 0), otherwise an interactive
chat with slash commands. Chats are kept in the window's history, the same way
(:mod:`desktop.recording`): the user's message is committed before generation starts and the
reply while it streams, so a kill -9 at any moment keeps the message and the reply so far,
which the next start marks interrupted. ``--no-history`` keeps nothing. ``--resume [ID]``
continues a stored conversation (the most recent one without an id); ``/chats`` lists them
and ``/open N`` switches to one. Ctrl-C stops the current reply, not the program. On a
terminal a reply is wrapped between words as it streams (:class:`desktop.text.WordWrap`);
piped output is the reply as written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from desktop.engine import ChatEngine, SamplingSettings, load_model, resolve_model
from desktop.engine.chat import STOP_CANCELLED, ReplyStream
from desktop.engine.settings import KV_CACHE_HELP, KV_CACHES
from desktop.errors import UserError
from desktop.paths import data_dir
from desktop.recording import RecordedReply, engine_messages, title_from
from desktop.store import CANCELLED, COMPLETE, ChatStore, Conversation, Message
from desktop.text import WordWrap, one_line

HELP = ("Commands: /new (new conversation), /chats (recent conversations), /open N (continue "
        "conversation N of /chats, or one by id), /system TEXT (set the system prompt), /stats "
        "(toggle per-reply figures), /help, /exit. Ctrl-C stops a reply; Ctrl-D or /exit "
        "quits.")
SAMPLING_FLAGS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed",
                  "max_new_tokens")
#: How many conversations /chats lists.
LISTED = 20
#: What a reply's first line starts with.
ASSISTANT = "Assistant: "


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The chat's sampling flags; unset ones take the model's defaults."""
    parser.add_argument("--temperature", type=float,
                        help="0 always takes the most likely token; higher is more varied "
                             "(default: the model's)")
    parser.add_argument("--top-k", type=int, help="sample among the k most likely tokens; "
                        "0 turns top-k off")
    parser.add_argument("--top-p", type=float,
                        help="sample among the most likely tokens that together hold this "
                             "share of the probability, at most 1")
    parser.add_argument("--min-p", type=float,
                        help="leave out tokens less likely than this fraction of the most "
                             "likely one")
    parser.add_argument("--repetition-penalty", type=float,
                        help="above 1 makes recently used tokens less likely; 1 turns it off")
    parser.add_argument("--seed", type=int,
                        help="the same model, seed, settings and conversation give the same "
                             "reply")
    parser.add_argument("--max-new-tokens", type=int, help="the longest reply, in tokens")


def sampling_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling flags given on the command line, by setting name."""
    return {name: getattr(args, name) for name in SAMPLING_FLAGS
            if getattr(args, name, None) is not None}


def settings_from_args(args: argparse.Namespace, defaults: dict) -> SamplingSettings:
    """The model's sampling defaults overridden by whatever flags were given; validated."""
    return SamplingSettings.from_dict(defaults).with_changes(**sampling_flags(args)).validated()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chat", help="chat in the terminal (kept in the history)")
    parser.add_argument("--model", help="model name or folder (default: the bundled default)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--kv-cache", choices=KV_CACHES, default="fp32", help=KV_CACHE_HELP)
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--prompt", help="answer this one message and exit")
    parser.add_argument("--resume", nargs="?", const="last", metavar="ID",
                        help="continue a conversation from the history: the most recent one, "
                             "or the one with this id (`onnxchat history list`)")
    parser.add_argument("--no-history", action="store_true",
                        help="keep nothing of this chat in the history")
    # SUPPRESS: a --data-dir given to the main command is not overwritten by this default.
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="the data folder holding the history (default: "
                             "$ONNXCHAT_DATA_DIR or the platform's user data folder)")
    parser.add_argument("--stats", action="store_true",
                        help="print per-reply figures (JSON on stderr with --prompt)")
    add_sampling_arguments(parser)
    parser.set_defaults(func=run)


class TerminalChat:
    """One terminal session: the conversation on screen, in the history or (with
    ``--no-history``) in memory only.

    A new conversation is stored when its first message is sent, titled from it, with the
    system prompt and the sampling flags as its settings, as the window does. Sampling flags
    given on the command line also become the settings of a conversation continued here.
    """

    def __init__(self, engine: ChatEngine, store: ChatStore | None, flags: dict[str, Any],
                 system_prompt: str, out: TextIO, err: TextIO, show_stats: bool) -> None:
        self.engine = engine
        self.store = store
        self.flags = flags
        self.out, self.err = out, err
        self.show_stats = show_stats
        self.conversation: Conversation | None = None
        self._system_prompt = system_prompt
        self._memory: list[dict[str, str]] = []  # the conversation when nothing is stored
        self._listed: list[Conversation] = []

    @property
    def system_prompt(self) -> str:
        return self.conversation.system_prompt if self.conversation else self._system_prompt

    def settings(self) -> SamplingSettings:
        """The model's defaults, then the conversation's settings, then the flags."""
        stored = dict(self.conversation.sampling) if self.conversation else {}
        defaults = self.engine.model.manifest.sampling_defaults
        return SamplingSettings.from_dict({**defaults, **stored, **self.flags}).validated()

    # --- conversations ------------------------------------------------------------------

    def open(self, which: str, system_prompt: str = "") -> Conversation:
        """Continue the conversation ``which``: an id, or "last" for the most recent one;
        ``system_prompt`` (the command line's) replaces its own. Opening never changes a
        conversation otherwise, but for the command line's sampling flags."""
        store = self._history_on()
        if which == "last":
            recent = store.list_conversations()
            if not recent:
                raise UserError("There is no conversation to resume yet; start one with "
                                "`onnxchat chat`.")
            which = recent[0].id
        conversation = store.get_conversation(which)
        changes: dict[str, Any] = {}
        if self.flags and {**conversation.sampling, **self.flags} != conversation.sampling:
            changes["sampling"] = {**conversation.sampling, **self.flags}
        if system_prompt and system_prompt != conversation.system_prompt:
            changes["system_prompt"] = system_prompt
        self.conversation = (store.update_conversation(conversation.id, **changes) if changes
                             else conversation)
        return self.conversation

    def new(self) -> None:
        """Start a new conversation (stored with its first message); the system prompt stays."""
        self._system_prompt = self.system_prompt
        self.conversation = None
        self._memory.clear()

    def set_system_prompt(self, text: str) -> None:
        self._system_prompt = text
        if self.conversation is not None and self.store is not None:
            self.conversation = self.store.update_conversation(self.conversation.id,
                                                               system_prompt=text)

    def branch(self) -> list[Message]:
        """The stored messages of the conversation on screen, first first."""
        if self.store is None or self.conversation is None:
            return []
        return self.store.messages(self.conversation.id)

    def recent(self) -> list[Conversation]:
        """The most recent conversations, remembered so that ``/open N`` means what was shown."""
        self._listed = self._history_on().list_conversations()
        return self._listed

    def pick(self, token: str) -> Conversation:
        """The conversation ``token`` names: its number in the last listing, or its id."""
        if token.isdigit():
            listed = self._listed or self.recent()
            number = int(token)
            if not 1 <= number <= min(len(listed), LISTED):
                raise UserError(f"There is no conversation {number}; /chats lists them.")
            token = listed[number - 1].id
        return self.open(token)

    # --- replies ------------------------------------------------------------------------

    def reply(self, text: str) -> tuple[ReplyStream, Iterable[str]]:
        """Store the user's message and start the reply: the stream, and the pieces to show.

        The context is planned first, so a message that cannot fit is refused before
        anything is stored. Iterate over the pieces to generate (and store) the reply.
        """
        if self.store is None:
            history = [*self._system(), *self._memory]
        else:
            history = engine_messages(self.system_prompt, self.branch())
        stream = self.engine.reply([*history, {"role": "user", "content": text}],
                                   self.settings())
        if self.store is None:
            self._memory.append({"role": "user", "content": text})
            return stream, self._remembered(stream)
        if self.conversation is None:
            self.conversation = self.store.create_conversation(
                title_from(text), model=self.engine.model.name,
                system_prompt=self._system_prompt, sampling=self.flags)
        self.store.add_message(self.conversation.id, "user", text)
        return stream, RecordedReply(self.store, self.conversation.id, stream)

    def _remembered(self, stream: ReplyStream) -> Iterable[str]:
        yield from stream
        self._memory.append({"role": "assistant", "content": stream.text})

    def _system(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self._system_prompt}] if self._system_prompt else []

    def _history_on(self) -> ChatStore:
        if self.store is None:
            raise UserError("The history is off in this chat (--no-history).")
        return self.store


def stream_to(pieces: Iterable[str], stream: ReplyStream, out: TextIO, column: int = 0) -> None:
    """Write the reply as it comes, on a terminal wrapped between words (``column``: what the
    line already holds); Ctrl-C meanwhile stops the reply, not the program."""
    wrap = _word_wrap(out, column)
    previous = signal.signal(signal.SIGINT, lambda *_: stream.cancel())
    try:
        for piece in pieces:
            out.write(wrap.feed(piece) if wrap else piece)
            out.flush()
    finally:
        signal.signal(signal.SIGINT, previous)
        if wrap:
            out.write(wrap.finish())


def _word_wrap(out: TextIO, column: int) -> WordWrap | None:
    """Wrapping for ``out`` if it is a terminal (one column spare: some terminals move to the
    next line after writing the last column)."""
    return WordWrap(shutil.get_terminal_size().columns - 1, column) if out.isatty() else None


def _wrapped(out: TextIO, text: str, column: int) -> str:
    wrap = _word_wrap(out, column)
    return wrap.feed(text) + wrap.finish() if wrap else text


def _stats_line(stream: ReplyStream) -> str:
    s = stream.stats
    dropped = f", {len(s.dropped_messages)} old messages dropped" if s.dropped_messages else ""
    return (f"[{s.new_tokens} tokens, {s.decode_tokens_per_s:.1f} tok/s, first token "
            f"{s.time_to_first_token_s * 1000:.0f} ms, stop: {s.stop_reason}{dropped}]")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None,
        read_line: Callable[[str], str] = input) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.no_history and args.resume:
        raise UserError("--resume continues a chat from the history; leave out --no-history.")
    if args.prompt is not None and not args.prompt.strip():
        raise UserError("--prompt is empty: give the message to send, or leave --prompt out "
                        "to chat.")
    store = None if args.no_history else ChatStore.open(data_dir(getattr(args, "data_dir",
                                                                         None)))
    try:
        notice = store.take_notice() if store else None
        if notice:
            err.write(f"onnxchat: {notice}\n")
        if store and args.resume and args.resume != "last":
            store.get_conversation(args.resume)  # an unknown id is refused before loading
        model = load_model(resolve_model(args.model), device=args.device, threads=args.threads,
                           kv_cache=args.kv_cache)
        settings_from_args(args, model.manifest.sampling_defaults)  # bad flags: say so now
        chat = TerminalChat(ChatEngine(model), store, sampling_flags(args), args.system or "",
                            out, err, args.stats)
        if args.resume:
            chat.open(args.resume, system_prompt=args.system or "")
        if args.prompt is not None:
            return _one_shot(chat, args.prompt)
        return _interactive(chat, read_line)
    finally:
        if store is not None:
            store.close()


def _one_shot(chat: TerminalChat, prompt: str) -> int:
    device = chat.engine.model.device
    if device.worth_telling:  # the interactive chat says it in its greeting instead
        chat.err.write(f"{device.reason}; running on CPU\n")
    stream, pieces = chat.reply(prompt)
    stream_to(pieces, stream, chat.out)
    chat.out.write("\n")
    chat.out.flush()
    if chat.show_stats:
        chat.err.write(json.dumps(stream.stats.to_dict()
                                  | {"load_s": chat.engine.model.load_seconds}) + "\n")
    return 130 if stream.stats.stop_reason == STOP_CANCELLED else 0


def _line_editing() -> None:
    """Arrow keys, history (↑) and pastes longer than the terminal's 4 KiB line buffer at the
    prompt: Python's ``input`` uses GNU readline once it is imported (where there is one)."""
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401


def _interactive(chat: TerminalChat, read_line: Callable[[str], str]) -> int:
    if read_line is input:
        _line_editing()
    out = chat.out
    model = chat.engine.model
    kept = "" if chat.store else " This chat is not kept (--no-history)."
    out.write(_wrapped(out, f"OnnxChat — {model.name} on {model.device.describe()}.{kept} "
                            "Type /help for commands.", 0) + "\n")
    if chat.conversation is not None:
        _show_resumed(chat, out)
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
        try:
            if not text.startswith("/"):
                _send(chat, line, out)
            elif _command(chat, text, out) == "exit":
                return 0
        except UserError as exc:
            chat.err.write(f"error: {exc}\n")


def _command(chat: TerminalChat, text: str, out: TextIO) -> str | None:
    command, _, rest = text.partition(" ")
    rest = rest.strip()
    if command in ("/exit", "/quit"):
        return "exit"
    if command in ("/new", "/reset"):
        chat.new()
        out.write("(new conversation)\n")
    elif command == "/chats":
        _list(chat, out)
    elif command == "/open":
        if not rest:
            raise UserError("/open needs a number from /chats or a conversation id.")
        chat.pick(rest)
        _show_resumed(chat, out)
    elif command == "/stats":
        chat.show_stats = not chat.show_stats
        out.write(f"(stats {'on' if chat.show_stats else 'off'})\n")
    elif command == "/system":
        chat.set_system_prompt(rest)
        out.write("(system prompt set)\n" if rest else "(system prompt cleared)\n")
    elif command == "/help":
        out.write(_wrapped(out, HELP, 0) + "\n")
    else:
        out.write(_wrapped(out, f"unknown command {command}; {HELP}", 0) + "\n")
    return None


def _send(chat: TerminalChat, line: str, out: TextIO) -> None:
    stream, pieces = chat.reply(line)
    if stream.plan.dropped:
        out.write(f"(the {len(stream.plan.dropped)} oldest messages no longer fit the "
                  "context and were left out)\n")
    out.write(ASSISTANT)
    out.flush()
    try:
        stream_to(pieces, stream, out, len(ASSISTANT))
    finally:
        if stream.stats.stop_reason == STOP_CANCELLED:
            out.write(" [stopped]")
        out.write("\n")
    if chat.show_stats:
        out.write(_stats_line(stream) + "\n")


def _list(chat: TerminalChat, out: TextIO) -> None:
    conversations = chat.recent()
    if not conversations:
        out.write("(no conversations yet)\n")
        return
    current = chat.conversation.id if chat.conversation else None
    for number, c in enumerate(conversations[:LISTED], 1):
        mark = "*" if c.id == current else " "
        out.write(f"{mark}{number:>3}. {one_line(c.title)}  ({c.updated:%Y-%m-%d %H:%M}, "
                  f"{c.id})\n")
    if len(conversations) > LISTED:
        out.write(f"(and {len(conversations) - LISTED} older: `onnxchat history list` shows "
                  "all; /open takes an id too)\n")


def _show_resumed(chat: TerminalChat, out: TextIO) -> None:
    """Say which conversation goes on, with its last exchange."""
    conversation = chat.conversation
    assert conversation is not None
    branch = chat.branch()
    out.write(f"(continuing “{one_line(conversation.title)}”, {len(branch)} messages)\n")
    for message in branch[-2:]:
        who = "You" if message.role == "user" else "Assistant"
        state = message.state
        note = "" if state == COMPLETE else f" [{'stopped' if state == CANCELLED else state}]"
        out.write(f"{who}: {_wrapped(out, message.text, len(who) + 2)}{note}\n")
