"""Where OnnxChat keeps its data and finds its models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "OnnxChat"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The user data folder: ``--data-dir``, else ``$ONNXCHAT_DATA_DIR``, else the platform's."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("ONNXCHAT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Rebuildable files (the folded graphs of desktop/engine/folding.py): ``$ONNXCHAT_CACHE_DIR``,
    else the platform's cache folder."""
    env = os.environ.get("ONNXCHAT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def checkout_root() -> Path | None:
    """The source checkout this package runs from, if any (it has ``pyproject.toml``)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def bundle_root() -> Path | None:
    """The unpacked folder of a frozen (PyInstaller) app."""
    meipass = getattr(sys, "_MEIPASS", None)
    return Path(meipass) if meipass else None


def model_dirs(data_override: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for models, most specific first (see models/README.md)."""
    dirs: list[Path] = []
    env = os.environ.get("ONNXCHAT_MODELS_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    for root in (checkout_root(), bundle_root()):
        if root is not None:
            dirs.append(root / "models")
    dirs.append(data_dir(data_override) / "models")
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique
