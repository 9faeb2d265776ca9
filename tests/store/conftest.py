"""Shared fixtures: a real store in a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.store import ChatStore, Repro


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> Iterator[ChatStore]:
    with ChatStore.open(data_dir) as opened:
        yield opened


@pytest.fixture
def repro() -> Repro:
    return Repro(model="smollm2-135m-instruct", manifest_sha256="ab" * 32, device="cpu",
                 sampling={"temperature": 0.7, "top_k": 40, "stop_strings": []}, seed=1234,
                 prompt_tokens=57, context_length=8192, dropped_messages=[0, 1])
