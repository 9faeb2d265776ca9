"""Real ``onnxchat serve`` processes on loopback with the default model, shared by the server
tests: a plain one, and one with an API key, a one-place queue, chat history, CORS and short
client timeouts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.server.launch import ServerProcess

API_KEY = "test-key-5f3a"
CORS_ORIGIN = "http://page.test"
CLIENT_TIMEOUT_S = 2


def _start(model: Path, data_dir: Path, *args: str) -> ServerProcess:
    env = dict(os.environ, ONNXCHAT_DATA_DIR=str(data_dir))
    return ServerProcess(["--model", str(model), "--device", "cpu", "--threads", "2",
                          "--port", "0", *args], env=env).start()


@pytest.fixture(scope="session")
def server_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-data")


@pytest.fixture(scope="session")
def server(default_model, server_data) -> Iterator[ServerProcess]:
    """Defaults: loopback, no key, a queue of 16, no history."""
    process = _start(default_model, server_data, "--queue", "16")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def keyed_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keyed-data")


@pytest.fixture(scope="session")
def keyed_server(default_model, keyed_data) -> Iterator[ServerProcess]:
    process = _start(default_model, keyed_data, "--api-key", API_KEY, "--queue", "1",
                     "--history", "--cors-origin", CORS_ORIGIN,
                     "--client-timeout", str(CLIENT_TIMEOUT_S))
    yield process
    process.stop()


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}
