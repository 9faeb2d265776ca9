"""``onnxchat serve`` as a command: refusals in one line, the start line, Ctrl-C, history."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from server_harness import request, sse_events

from desktop.store import ChatStore

pytestmark = pytest.mark.slow


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", "serve", *args], capture_output=True,
                          text=True, timeout=300, check=False, env=env)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnxchat: error: "), result.stderr
    return lines[0]


def test_a_port_in_use_is_one_line(server, default_model):
    port = str(urlsplit(server.url).port)
    line = one_line_error(serve("--model", str(default_model), "--port", port))
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line


def test_listening_off_loopback_needs_an_api_key(default_model):
    env = {k: v for k, v in os.environ.items() if k != "ONNXCHAT_API_KEY"}
    line = one_line_error(serve("--model", str(default_model), "--host", "0.0.0.0", env=env))
    assert "--api-key" in line and "0.0.0.0" in line


@pytest.mark.parametrize(("args", "words"), [
    (["--port", "70000"], "is not a port"),
    (["--queue", "0"], "--queue 0 is out of range"),
    (["--client-timeout", "0"], "--client-timeout"),
    (["--model", "no-such-model", "--port", "0"], "no model named 'no-such-model'"),
])
def test_bad_options_are_one_line(args, words):
    assert words in one_line_error(serve(*args))


def test_it_says_where_it_listens_and_stops_on_ctrl_c(default_model, tmp_path):
    env = dict(os.environ, ONNXCHAT_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "desktop", "serve", "--model",
                                str(default_model), "--device", "cpu", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("OnnxChat serves smollm2-135m-instruct on CPU at "
                               "http://127.0.0.1:"), line + process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        assert url.endswith("/v1")
        reply = request(url + "/chat/completions", "POST",
                        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
        assert reply.status == 200
        assert process.stdout.readline().startswith("chat chatcmpl-")
        # Ctrl-C while a long reply streams: the stream ends with an error event, not cut.
        parts = urlsplit(url)
        streaming = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        streaming.request("POST", "/v1/completions", body=json.dumps({
            "prompt": "1, 2, 3,", "max_tokens": 6000, "temperature": 0, "stream": True}))
        response = streaming.getresponse()
        assert response.readline().startswith(b"data: ")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    events = sse_events(response.read())
    assert events[-1]["error"]["message"] == "the server is shutting down"
    assert process.returncode == 0, err
    assert out.strip().endswith("OnnxChat server stopped")
    assert "Traceback" not in err
    assert not (tmp_path / "chats.sqlite3").exists()  # no history unless asked for


def test_requests_are_saved_only_with_history(keyed_server, keyed_data, auth, server,
                                              server_data):
    question = "Where do penguins live? (history test)"
    reply = request(keyed_server.url + "/chat/completions", "POST", {
        "messages": [{"role": "system", "content": "Answer briefly."},
                     {"role": "user", "content": question}],
        "max_tokens": 6, "temperature": 0}, auth)
    assert reply.status == 200
    answer = reply.json()["choices"][0]["message"]["content"]
    with ChatStore.open(keyed_data) as store:
        (conversation,) = [c for c in store.list_conversations()
                           if c.title == f"API: {question}"]
        assert conversation.system_prompt == "Answer briefly."
        user, assistant = store.messages(conversation.id)
    assert (user.role, user.text) == ("user", question)
    assert (assistant.role, assistant.text, assistant.state) == ("assistant", answer, "complete")

    assert request(server.url + "/chat/completions", "POST", {
        "messages": [{"role": "user", "content": question}], "max_tokens": 2}).status == 200
    assert not (server_data / "chats.sqlite3").exists()
