"""The listening socket and uvicorn around the app: binding, slow clients, shutting down.

The socket is bound before the model loads, so a port in use is reported at once in one line.
uvicorn bounds a keep-alive connection's idle time but not a client that connects and then
sends its request headers a byte at a time; :func:`protocol_with_header_deadline` closes such
a connection when its headers have not arrived in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.h11_impl import RequestResponseCycle as _Cycle
from uvicorn.server import HANDLED_SIGNALS

from desktop.errors import UserError

#: Most connections uvicorn serves at once; past this it answers 503 (a flood, not a client).
MAX_CONNECTIONS = 512
#: Largest request line plus headers, in bytes.
MAX_HEADER_BYTES = 32 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (a name other than localhost counts as not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening); one clear line if it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host!r}: {exc.strerror}; give an address of this "
                        "machine with --host (127.0.0.1 by default)") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (is another server "
                            "running?); choose another with --port") from None
        if exc.errno == errno.EACCES:
            raise UserError(f"no permission to listen on port {port}; ports below 1024 need "
                            "administrator rights, choose another with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """The base URL clients use (``http://host:port/v1``), with the port the system chose."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


def protocol_with_header_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request headers have not all
    arrived ``seconds`` after it opened (or after its first byte, for a later request)."""

    class DeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._waiting_for_headers():
                if self._deadline is None:
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _waiting_for_headers(self) -> bool:
            cycle: _Cycle | None = self.cycle
            return cycle is None or cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._on_deadline)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _on_deadline(self) -> None:
            self._deadline = None
            if self._waiting_for_headers() and not self.transport.is_closing():
                self.transport.close()

    return DeadlineProtocol


class _Server(uvicorn.Server):
    """uvicorn's server, telling us when it listens and before it shuts down, and ending on
    Ctrl-C or SIGTERM as its normal way to stop (uvicorn re-raises the signal afterwards,
    which would make a clean stop exit 130, or skip our clean-up on SIGTERM)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None],
                 on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_shutdown = on_shutdown

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()  # cancel generation first, so open streams end at the next token
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(app: Callable, sock: socket.socket, *, header_timeout: float,
        on_started: Callable[[], None], on_shutdown: Callable[[], None]) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM."""
    config = uvicorn.Config(
        app, loop="asyncio", http=protocol_with_header_deadline(header_timeout),
        lifespan="off", log_config=None, log_level="warning", access_log=False,
        timeout_keep_alive=5, timeout_graceful_shutdown=5, limit_concurrency=MAX_CONNECTIONS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES, server_header=False)
    _Server(config, on_started, on_shutdown).run(sockets=[sock])
