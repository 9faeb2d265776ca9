"""Fixtures of the GPU tests: a place for their figures.

These tests need a working NVIDIA GPU and onnxruntime-gpu; everywhere else they are skipped
with the reason. tests/gpu/run.sh runs them on such a machine without network: the model
folder and the project's runtime dependencies are all they need (``onnx`` only where a test
says so).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: run.sh sets this: the figures of the tests go to figures.json in that folder.
RESULTS_ENV = "ONNXCHAT_GPU_RESULTS"


@pytest.fixture(scope="session")
def figures() -> Iterator[dict]:
    """Measured figures by test; written to ``$ONNXCHAT_GPU_RESULTS/figures.json`` at the
    end of the session when that is set."""
    found: dict = {}
    yield found
    folder = os.environ.get(RESULTS_ENV)
    if folder and found:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "figures.json").write_text(json.dumps(found, indent=2) + "\n",
                                                   encoding="utf-8")
