"""``onnxchat serve``: the local OpenAI-compatible server, from the command line.

Registering the command imports nothing heavy (no engine, no ONNX Runtime, no web stack);
:func:`run` imports them when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from desktop.engine.settings import KV_CACHE_HELP, KV_CACHES

API_KEY_ENV = "ONNXCHAT_API_KEY"
DEFAULT_PORT = 8080
DEFAULT_QUEUE = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the model over the OpenAI API on this machine",
        description="Serve a model over the OpenAI HTTP API (/v1/models, /v1/chat/completions, "
                    "/v1/completions). Listens on 127.0.0.1 unless --host says otherwise; any "
                    "other address needs --api-key.")
    parser.add_argument("--model", help="model name or folder (default: the bundled default)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--kv-cache", choices=KV_CACHES, default="fp32", help=KV_CACHE_HELP)
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV) or None,
                        help=f"key every request must send as `Authorization: Bearer KEY` "
                             f"(or ${API_KEY_ENV}); required off loopback")
    parser.add_argument("--queue", type=int, default=DEFAULT_QUEUE,
                        help=f"requests that may wait while one runs (default {DEFAULT_QUEUE}); "
                             "more are answered 429 with Retry-After")
    parser.add_argument("--history", action="store_true",
                        help="save each request and its reply to the chat history")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages from ORIGIN (repeatable; CORS is off without)")
    parser.add_argument("--client-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="time a client has to send its request headers, and its body "
                             "(default 30)")
    parser.add_argument("--status-json", action="store_true",
                        help="report on stdout as JSON lines (for the window)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from desktop.errors import UserError
    from desktop.server import serving

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a port; use 1 to 65535 (0 picks a free one)")
    if not 1 <= args.queue <= 10_000:
        raise UserError(f"--queue {args.queue} is out of range; use 1 to 10000")
    if not 0.1 <= args.client_timeout <= 3600:
        raise UserError("--client-timeout must be from 0.1 to 3600 seconds")
    if not serving.is_loopback(args.host) and not args.api_key:
        raise UserError(f"listening on {args.host} would let other machines use the model; "
                        f"give --api-key KEY (or set {API_KEY_ENV}), or keep the default "
                        "--host 127.0.0.1")
    sock = serving.bind(args.host, args.port)
    try:
        return _serve(args, sock)
    finally:
        sock.close()


def _serve(args: argparse.Namespace, sock: object) -> int:
    from desktop.engine import ChatEngine, load_model, resolve_model
    from desktop.paths import data_dir
    from desktop.server import serving
    from desktop.server.app import ServerOptions, Service
    from desktop.server.status import StatusReporter
    from desktop.server.worker import ModelWorker

    model = load_model(resolve_model(args.model), device=args.device, threads=args.threads,
                       kv_cache=args.kv_cache)
    engine = ChatEngine(model)
    status = StatusReporter(args.status_json)
    worker = ModelWorker(args.queue, on_change=status.changed)
    store = recorder = None
    if args.history:
        from desktop.server.history import HistoryRecorder
        from desktop.store import ChatStore

        store = ChatStore.open(data_dir())
        notice = store.take_notice()  # a damaged history moved aside: told once, by anyone
        if notice:
            print(f"onnxchat: {notice}", file=sys.stderr, flush=True)
        recorder = HistoryRecorder(store, model)
    options = ServerOptions(api_key=args.api_key, cors_origins=tuple(args.cors_origin),
                            client_timeout=args.client_timeout)
    app = Service(engine, worker, options, recorder).app()
    try:
        serving.run(app, sock, header_timeout=args.client_timeout,
                    on_started=lambda: status.listening(serving.url_of(sock), model.name,
                                                        model.device),
                    on_shutdown=worker.close)
    finally:
        worker.close()
        if store is not None:
            store.close()
        status.stopped()
    return 0
