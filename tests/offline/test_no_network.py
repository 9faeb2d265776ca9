"""OnnxChat is offline by design: a whole session runs with every non-loopback connection
raising — export from a local folder, chat in the terminal and in the window (self-test),
a history export, and the local server answering a request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_harness import request

from desktop.server.launch import ServerProcess

GUARD = '''
import socket

_ALLOWED = ("127.", "::1", "localhost")


def _check(address):
    host = address[0] if isinstance(address, tuple) else str(address)
    if isinstance(host, str) and (host.startswith(_ALLOWED) or host == ""):
        return
    if isinstance(address, (str, bytes)):  # AF_UNIX paths are local
        return
    raise OSError(f"network access blocked in the offline test: {address!r}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _check((host,))
    return _getaddrinfo(host, *args, **kwargs)


_getaddrinfo = socket.getaddrinfo
socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(guard), env.get("PYTHONPATH", "")])
    env["ONNXCHAT_DATA_DIR"] = str(tmp_path / "data")
    env["QT_QPA_PLATFORM"] = "offscreen"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)  # the code itself must not need these
    return env


def run(env, *args, timeout=600):
    result = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert "network access blocked" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_the_guard_really_blocks(offline_env):
    code = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=1)"
    result = subprocess.run([sys.executable, "-c", code], env=offline_env, capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0
    assert "network access blocked" in result.stderr


@pytest.mark.slow
def test_a_whole_session_without_network(offline_env, tmp_path, tiny_gpt2_hf, default_model):
    models = tmp_path / "models"
    run(offline_env, "-m", "export", str(tiny_gpt2_hf), "--quant", "fp32", "--name", "local",
        "--out", str(models))
    assert (models / "local" / "manifest.json").is_file()
    run(offline_env, "-m", "desktop", "chat", "--model", str(models / "local"),
        "--prompt", "hello", "--max-new-tokens", "8", "--device", "cpu")
    run(offline_env, "-m", "desktop", "--self-test", "--model", str(default_model))
    out = tmp_path / "history.json"
    run(offline_env, "-m", "desktop", "history", "export", "--format", "json", str(out))
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["format"] == "onnxchat-history"
    assert data["conversations"], "the self-test's conversation should have been exported"

    with ServerProcess(["--model", str(default_model), "--device", "cpu", "--port", "0"],
                       env=offline_env) as server:
        reply = request(server.url + "/chat/completions", "POST", {
            "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4})
        assert reply.status == 200, reply.body
    assert not [line for line in server.stderr_tail if "network access blocked" in line]
