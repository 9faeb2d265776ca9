"""The inference engine: ONNX Runtime, hand-written sampling, streaming text. No Qt here.

Public API::

    model = load_model(folder, device="auto", threads=None)      # Model
    engine = ChatEngine(model)
    stream = engine.reply(messages, SamplingSettings(...))         # plan computed here
    stream = engine.complete(prompt_text, settings)                # raw text, no template
    for piece in stream: ...                                       # text pieces
    stream.cancel()                                                # from any thread
    stream.stats, stream.plan.dropped                              # after / before iterating

Lower level: :class:`Generator` (append_tokens / next_token / is_stop / rewind_to).

Names are imported from their modules on first use, so listing models or reading manifests
(``onnxchat models``) does not load numpy and ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from desktop.engine.catalog import InstalledModel, list_models, resolve_model
    from desktop.engine.chat import ChatEngine, ReplyStats, ReplyStream
    from desktop.engine.context import ContextPlan
    from desktop.engine.generator import Generator
    from desktop.engine.manifest import Manifest, read_manifest, verify_files
    from desktop.engine.model import Model, load_model
    from desktop.engine.runtime import DeviceInfo
    from desktop.engine.settings import PRESETS, SamplingSettings

#: Public name → the module that defines it.
_HOMES = {
    "InstalledModel": "catalog", "list_models": "catalog", "resolve_model": "catalog",
    "ChatEngine": "chat", "ReplyStats": "chat", "ReplyStream": "chat",
    "ContextPlan": "context",
    "Generator": "generator",
    "Manifest": "manifest", "read_manifest": "manifest", "verify_files": "manifest",
    "Model": "model", "load_model": "model",
    "DeviceInfo": "runtime",
    "PRESETS": "settings", "SamplingSettings": "settings",
}

__all__ = [
    "PRESETS",
    "ChatEngine",
    "ContextPlan",
    "DeviceInfo",
    "Generator",
    "InstalledModel",
    "Manifest",
    "Model",
    "ReplyStats",
    "ReplyStream",
    "SamplingSettings",
    "list_models",
    "load_model",
    "read_manifest",
    "resolve_model",
    "verify_files",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
