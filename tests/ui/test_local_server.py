"""The window's "Local server" switch (Model menu) runs a real ``onnxchat serve`` child
process: the status bar shows the address, the model and the request counts, and switching off
(or closing the window) stops it."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from server_harness import request

pytestmark = pytest.mark.slow

START_MS = 180_000


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_switch_serves_counts_requests_and_stops(app, window, qtbot):
    app.prefs.server_port = 0  # any free port
    assert not window.server_status.isVisible()
    window.server_action.trigger()
    assert app.server.state == "starting" and window.server_action.isChecked()
    assert window.server_status.text() == "Local server: starting…"
    qtbot.waitUntil(lambda: app.server.state == "on", timeout=START_MS)
    url = app.server.url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert window.server_status.text() == f"Local server: {url} · smollm2-135m-instruct"

    reply = request(url + "/chat/completions", "POST",
                    {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert reply.status == 200
    qtbot.waitUntil(lambda: app.server.counts.get("served") == 1, timeout=60_000)
    assert window.server_status.text().endswith("· 0 running, 0 waiting, 1 answered")

    window.server_action.trigger()
    qtbot.waitUntil(lambda: app.server.state == "off", timeout=60_000)
    assert not window.server_action.isChecked()
    assert not window.server_status.isVisible()
    assert refused(url)


def test_closing_the_window_stops_the_server(app, window, qtbot):
    app.prefs.server_port = 0
    window.server_action.trigger()
    qtbot.waitUntil(lambda: app.server.state == "on", timeout=START_MS)
    url = app.server.url
    window.close()
    assert app.server.state == "off"
    assert refused(url)


def test_a_port_in_use_is_reported_and_the_switch_goes_off(app, window, qtbot):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        app.prefs.server_port = busy.getsockname()[1]
        with qtbot.waitSignal(app.server.failed, timeout=START_MS) as failure:
            window.server_action.trigger()
    port = app.prefs.server_port
    assert failure.args[0].startswith(f"port {port} on 127.0.0.1 is already in use")
    assert app.server.state == "off" and not window.server_action.isChecked()
    assert window.banner.label.text().startswith("The local server stopped: port")
