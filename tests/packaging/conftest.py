"""The packaging scripts are not a package: load them from ``packaging/`` by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
if str(PACKAGING) not in sys.path:
    sys.path.insert(0, str(PACKAGING))


def load(name: str) -> ModuleType:
    """Import ``packaging/<name>.py`` under a private name (``build`` is also a PyPI package)."""
    spec = importlib.util.spec_from_file_location(f"onnxchat_packaging_{name}",
                                                  PACKAGING / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def layout() -> ModuleType:
    return importlib.import_module("bundle_layout")


@pytest.fixture(scope="session")
def build_script() -> ModuleType:
    return load("build")
