"""Installed model folders as a person manages them: what each one is (family, parameter
count, recipe, disk use) and deleting one without ever leaving half a model behind.

Qt-free, so ``onnxchat models`` and the window's model list show the same columns from the
same code. Reads only the model-folder format (``manifest.json``, ``config.json``;
models/README.md), never the export package.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.engine.catalog import InstalledModel
from desktop.errors import UserError
from desktop.paths import bundle_root

#: Prefix of a folder on its way out: hidden, so it is never listed as a model (models/README.md).
DELETING_PREFIX = ".deleting-"
#: ``model_type`` → the family name people know.
FAMILIES = {
    "llama": "Llama", "mistral": "Mistral", "mixtral": "Mixtral", "qwen2": "Qwen2",
    "qwen3": "Qwen3", "phi": "Phi", "phi3": "Phi-3", "gemma": "Gemma", "gemma2": "Gemma 2",
    "gemma3": "Gemma 3", "gemma3_text": "Gemma 3", "granite": "Granite", "olmo": "OLMo",
    "olmo2": "OLMo 2", "stablelm": "StableLM", "gpt_neox": "GPT-NeoX", "falcon": "Falcon",
    "opt": "OPT", "gpt2": "GPT-2", "smollm3": "SmolLM3",
}
#: Families whose MLP has two matrices (up, down); the others gate it with a third.
_TWO_MATRIX_MLP = frozenset({"gpt2", "gpt_neox", "falcon", "opt", "phi", "gptj", "bloom"})


class DeleteRefused(UserError):
    """A model that must not or could not be deleted; the message is the one line to show."""


@dataclass(frozen=True)
class DiskUse:
    """Bytes of the files in a folder, each file counted once however many names it has
    (hard links); ``freed``: what deleting the folder gives back, leaving out files that are
    also linked from outside it."""

    total: int
    freed: int


@dataclass(frozen=True)
class ModelFacts:
    """One row of the model list."""

    family: str
    parameters: int | None
    recipe: str
    disk: DiskUse

    @property
    def parameters_text(self) -> str:
        return parameters_text(self.parameters)


def model_facts(entry: InstalledModel) -> ModelFacts:
    """The list columns of an installed model (an unreadable one shows what can be read)."""
    config = _read_json(entry.path / "config.json")
    manifest = entry.manifest.raw if entry.manifest is not None else {}
    architecture = manifest.get("architecture") if isinstance(manifest, dict) else None
    model_type = config.get("model_type") or (architecture or {}).get("model_type")
    recipe = entry.manifest.recipe if entry.manifest is not None else "—"
    return ModelFacts(family=family_name(model_type), parameters=parameter_count(config),
                      recipe=recipe, disk=disk_use(entry.path))


def family_name(model_type: object) -> str:
    if not isinstance(model_type, str) or not model_type:
        return "—"
    return FAMILIES.get(model_type, model_type)


def parameter_count(config: dict[str, Any]) -> int | None:
    """The model's weights from its ``config.json``: embeddings, attention, MLP (gated or
    not, times the experts of a mixture), norms, and the LM head unless it is tied. Biases
    are left out; they change no size as written ("135M"). ``None`` when a shape is missing."""
    def first(*keys: str) -> Any:
        return next((config[k] for k in keys if isinstance(config.get(k), int)), None)

    hidden = first("hidden_size", "n_embd", "d_model")
    layers = first("num_hidden_layers", "n_layer", "num_layers")
    heads = first("num_attention_heads", "n_head")
    vocab = first("vocab_size")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, heads, vocab)):
        return None
    kv_heads = first("num_key_value_heads", "num_kv_heads") or heads
    head_dim = first("head_dim") or hidden // heads
    inner = first("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size") or 4 * hidden
    experts = first("num_local_experts", "num_experts") or 1
    matrices = 2 if config.get("model_type") in _TWO_MATRIX_MLP else 3
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    mlp = matrices * hidden * inner * experts
    embeddings = vocab * hidden
    head = 0 if config.get("tie_word_embeddings", True) else vocab * hidden
    norms = (2 * layers + 1) * hidden
    return embeddings + head + layers * (attention + mlp) + norms


def parameters_text(count: int | None) -> str:
    """``135M``, ``1.5B``, ``8B``; ``120K`` for test-sized models."""
    if count is None:
        return "—"
    if count >= 1e9:
        return f"{count / 1e9:.1f}".removesuffix(".0") + "B"
    if count >= 1e6:
        return f"{round(count / 1e6)}M"
    return f"{max(1, round(count / 1e3))}K"


def size_text(size: int) -> str:
    """Bytes as people read them: ``244 MB``, ``4.6 GB``."""
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    if size >= 1e6:
        return f"{size / 1e6:.0f} MB"
    return f"{max(1, round(size / 1e3))} KB" if size else "0 KB"


def disk_use(folder: Path) -> DiskUse:
    """Sizes of the files under ``folder`` without following links inside it; a file with
    several names (hard links, as the tests' model copies use) is counted once. A folder that
    is itself a symbolic link frees nothing when deleted (only the link goes)."""
    seen: dict[tuple[int, int], list[int]] = {}  # (device, inode) → [size, links, names here]
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen:
                seen[key][2] += 1
            else:
                seen[key] = [info.st_size, info.st_nlink, 1]
    total = sum(size for size, _, _ in seen.values())
    if folder.is_symlink():
        return DiskUse(total, 0)
    freed = sum(size for size, links, here in seen.values() if here >= links)
    return DiskUse(total, freed)


def delete_model(folder: Path, in_use: list[Path]) -> None:
    """Delete the model ``folder``: first renamed to a hidden name in the same place (one
    atomic step, after which it is no longer a model), then removed. A crash in between leaves
    only a hidden folder, which the next deletion in that place removes. Refuses, with one
    line, a model in ``in_use`` and one that comes with the app."""
    folder = Path(folder)
    name = folder.name
    if any(_same(folder, other) for other in in_use):
        raise DeleteRefused(f"{name} is in use: choose another model first, then delete it.")
    bundle = bundle_root()
    if bundle is not None and folder.resolve().is_relative_to(bundle.resolve()):
        raise DeleteRefused(f"{name} comes with the app and cannot be deleted.")
    if not (folder / "manifest.json").is_file():
        raise DeleteRefused(f"{folder} is not a model folder (no manifest.json); nothing was "
                            "deleted.")
    _remove_leftovers(folder.parent)
    trash = folder.parent / f"{DELETING_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    try:
        folder.rename(trash)
    except OSError as exc:
        raise DeleteRefused(f"Cannot delete {name} ({exc.strerror or exc}): check that the "
                            f"folder {folder.parent} is writable.") from None
    _remove(trash)


def _remove_leftovers(parent: Path) -> None:
    """Finish deletions a crash interrupted."""
    for stale in parent.glob(f"{DELETING_PREFIX}*"):
        _remove(stale)


def _remove(path: Path) -> None:
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == Path(b).resolve()
    except OSError:
        return False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
