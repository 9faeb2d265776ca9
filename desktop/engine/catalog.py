"""Finding installed models: scan the model folders for manifests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from desktop.engine.manifest import MANIFEST, Manifest, read_manifest
from desktop.errors import ModelError
from desktop.paths import DEFAULT_MODEL_NAME, model_dirs


@dataclass(frozen=True)
class InstalledModel:
    """One entry of the model list: a readable manifest, or why it is not readable."""

    path: Path
    manifest: Manifest | None
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else self.path.name


def list_models(search: list[Path] | None = None) -> list[InstalledModel]:
    """Every model folder in the search path; broken ones are listed with their problem."""
    found: list[InstalledModel] = []
    seen: set[str] = set()
    for root in search if search is not None else model_dirs():
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
                continue
            if folder.name in seen:
                continue
            seen.add(folder.name)
            try:
                found.append(InstalledModel(folder, read_manifest(folder)))
            except ModelError as exc:
                found.append(InstalledModel(folder, None, str(exc)))
    return found


def resolve_model(name_or_path: str | os.PathLike[str] | None) -> Path:
    """A model folder from a name (searched in the model folders) or a path."""
    wanted = str(name_or_path) if name_or_path else DEFAULT_MODEL_NAME
    candidate = Path(wanted).expanduser()
    if candidate.is_dir() or os.sep in wanted or wanted.startswith("."):
        return candidate
    for root in model_dirs():
        if (root / wanted / MANIFEST).is_file():
            return root / wanted
    if name_or_path is None:
        raise ModelError(
            "no model is installed; prepare the default one with `onnxchat export default` "
            "(or `make model` in a source checkout)"
        )
    names = ", ".join(m.name for m in list_models()) or "none"
    raise ModelError(f"no model named '{wanted}' (installed: {names}); see `onnxchat models`")
