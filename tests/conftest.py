"""Fixtures shared by every test package: the repository's model store and real models."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DEFAULT_MODEL = MODELS / "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The default model folder that `make test` exports before the suite runs."""
    if not (DEFAULT_MODEL / "manifest.json").is_file():
        pytest.fail(f"{DEFAULT_MODEL} is missing: run `make model` (or `make test`) first")
    return DEFAULT_MODEL
