"""Reading a model folder's ``manifest.json`` (format: models/README.md).

The manifest is the only contract between the export step and the app. Reading it is strict
about what the engine needs and lenient about extra keys, so folders written by newer minor
versions still load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.errors import ModelError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What the engine needs from ``manifest.json``, plus the raw dictionary."""

    folder: Path
    name: str
    onnx_file: str
    tokenizer_file: str
    chat_template_file: str | None
    context_length: int
    stop_token_ids: tuple[int, ...]
    special_tokens: dict[str, Any]
    sampling_defaults: dict[str, Any]
    quantization: dict[str, Any]
    validation: dict[str, Any]
    files: dict[str, dict[str, Any]]
    #: Hash of manifest.json as read: identifies this exact export in each reply's record.
    sha256: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def recipe(self) -> str:
        return str(self.quantization.get("recipe", "unknown"))

    @property
    def size_bytes(self) -> int:
        return sum(int(f.get("size", 0)) for f in self.files.values())

    @property
    def graphs(self) -> dict[str, str]:
        """The graph file each device runs (``onnx.graphs``, models/README.md). Folders
        exported before that key existed have one graph: it runs on both devices, except a
        fused one, which ONNX Runtime's CUDA attention cannot run in fp32."""
        onnx = self.raw["onnx"]
        listed = onnx.get("graphs")
        if isinstance(listed, dict):
            found = {device: entry["file"] for device, entry in listed.items()
                     if device in ("cpu", "cuda") and isinstance(entry, dict)
                     and isinstance(entry.get("file"), str)}
            if "cpu" in found:
                return found
        if onnx.get("past_present_share_buffer"):
            return {"cpu": self.onnx_file}
        return {"cpu": self.onnx_file, "cuda": self.onnx_file}

    @property
    def int8_cache(self) -> tuple[str | None, str]:
        """The CPU graph whose attention keeps an int8 KV cache (``onnx.graphs["cpu-int8kv"]``,
        models/README.md): its file, or None and why the folder has none. The graph is
        usable only with its scales (:attr:`int8_cache_scales`): long prompts are read
        through the CPU graph and rounded with them."""
        entry = (self.raw["onnx"].get("graphs") or {}).get("cpu-int8kv")
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            if not isinstance(entry.get("scales"), str):
                return None, ("it was exported before OnnxChat kept its cache scales; "
                              "export it again")
            return entry["file"], ""
        if isinstance(entry, dict) and isinstance(entry.get("reason"), str):
            return None, f"the export did not keep one: {entry['reason']}"
        if not self.raw["onnx"].get("past_present_share_buffer"):
            return None, "only the fused layout has one"
        return None, "it was exported before OnnxChat made one; export it again"

    def require_int8_cache(self) -> str:
        """The int8-cache graph's file; :class:`ModelError` saying why when there is none,
        for every command that asks for ``--kv-cache int8``."""
        graph, missing = self.int8_cache
        if graph is None:
            raise ModelError(f"{self.folder} has no int8 KV cache graph ({missing}); "
                             "use --kv-cache fp32")
        return graph

    @property
    def int8_cache_scales(self) -> str | None:
        """The int8-cache graph's key and value scales (a ``.npy`` array ``[layers, 2,
        kv_heads * head_size]``), relative to the folder; None without a usable graph."""
        if self.int8_cache[0] is None:
            return None
        return self.raw["onnx"]["graphs"]["cpu-int8kv"]["scales"]

    @property
    def int8_cache_rotation(self) -> str | None:
        """The orthogonal matrix ``[head_size, head_size]`` (``.npy``) the int8-cache graph
        caches each head's values rotated by, relative to the folder; None without a usable
        graph, or for a graph exported before values were rotated (it caches them as they
        are)."""
        if self.int8_cache[0] is None:
            return None
        rotation = self.raw["onnx"]["graphs"]["cpu-int8kv"].get("value_rotation")
        return rotation if isinstance(rotation, str) else None


def _require(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ModelError(
            f"{path}: '{key}' is missing or malformed; re-export the model with `onnxchat export`"
        )
    return value


def read_manifest(folder: str | Path) -> Manifest:
    """Parse and check ``folder/manifest.json``; raise :class:`ModelError` naming the problem."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelError(
            f"model folder {folder} does not exist; run `onnxchat models` to list models"
        )
    if not path.is_file():
        raise ModelError(
            f"{folder} has no manifest.json, so it is not an OnnxChat model folder; "
            "create one with `onnxchat export`"
        )
    content = path.read_bytes()
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); re-export the model") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object; re-export the model")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise ModelError(f"{path} has no schema_version; re-export the model")
    if version > SCHEMA_VERSION:
        raise ModelError(
            f"{path} uses manifest schema {version}, newer than this OnnxChat understands "
            f"({SCHEMA_VERSION}); update OnnxChat"
        )
    onnx = _require(data, "onnx", dict, path)
    tokenizer = _require(data, "tokenizer", dict, path)
    template = data.get("chat_template")
    stop_ids = _require(data, "stop_token_ids", list, path)
    if not all(isinstance(i, int) for i in stop_ids):
        raise ModelError(f"{path}: stop_token_ids must be integers; re-export the model")
    context = _require(data, "context_length", int, path)
    if context < 8:
        raise ModelError(f"{path}: context_length {context} is too small; re-export the model")
    manifest = Manifest(
        folder=folder,
        name=str(data.get("name") or folder.name),
        onnx_file=str(_require(onnx, "file", str, path)),
        tokenizer_file=str(tokenizer.get("file", "tokenizer.json")),
        chat_template_file=template.get("file") if isinstance(template, dict) else None,
        context_length=context,
        stop_token_ids=tuple(stop_ids),
        special_tokens=dict(data.get("special_tokens") or {}),
        sampling_defaults=dict(data.get("sampling_defaults") or {}),
        quantization=dict(data.get("quantization") or {}),
        validation=dict(data.get("validation") or {}),
        files=dict(data.get("files") or {}),
        sha256=hashlib.sha256(content).hexdigest(),
        raw=data,
    )
    for rel in (manifest.onnx_file, manifest.tokenizer_file):
        file = folder / rel
        if not file.is_file():
            raise ModelError(f"{file} is missing; re-export the model with `onnxchat export`")
        if file.stat().st_size == 0:
            raise ModelError(f"{file} is empty (0 bytes); re-export the model")
    return manifest


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_files(manifest: Manifest) -> list[str]:
    """Recompute every listed file's sha256; return one problem line per bad file."""
    problems = []
    for rel, info in sorted(manifest.files.items()):
        file = manifest.folder / rel
        if not file.is_file():
            problems.append(f"{file}: missing")
        elif file.stat().st_size != info.get("size", file.stat().st_size):
            problems.append(f"{file}: size {file.stat().st_size} != {info.get('size')} recorded")
        elif sha256_file(file) != info.get("sha256"):
            problems.append(f"{file}: sha256 does not match the manifest (file changed or corrupt)")
    return problems
