"""What was dropped on the window or the export dialog: a ``.gguf`` file, a Hugging Face model
folder, or something the export cannot take (and why, so the dialog can say it in one line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QMimeData, QUrl

GGUF = "gguf"
FOLDER = "folder"
# Problems, each shown as one line in the dialog.
SEVERAL = "several"
NOT_LOCAL = "not-local"
NOT_GGUF = "not-gguf"
NOT_MODEL_FOLDER = "not-model-folder"
ALREADY_MODEL = "already-model"
MISSING = "missing"


@dataclass(frozen=True)
class Drop:
    """A classified drop: ``kind`` is :data:`GGUF` or :data:`FOLDER` for a source the export
    takes, else the problem; ``path`` is the dropped item (``None`` for several or remote
    ones); ``count`` how many items were dropped."""

    kind: str
    path: Path | None
    count: int = 1

    @property
    def usable(self) -> bool:
        return self.kind in (GGUF, FOLDER)


def has_files(mime: QMimeData) -> bool:
    """Whether a drag carries file or folder locations (worth accepting and explaining)."""
    return mime.hasUrls() and bool(mime.urls())


def classify_urls(urls: list[QUrl]) -> Drop:
    """What a drop's locations (``QMimeData.urls()``) amount to."""
    if len(urls) != 1:
        return Drop(SEVERAL, None, len(urls))
    if not urls[0].isLocalFile():
        return Drop(NOT_LOCAL, None)
    return classify(Path(urls[0].toLocalFile()))


def classify(path: Path) -> Drop:
    """A ``.gguf`` file or a folder with ``config.json`` is a source; the export itself checks
    the rest (weights, tokenizer, a known architecture) and says what is missing."""
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return Drop(ALREADY_MODEL, path)
        if (path / "config.json").is_file():
            return Drop(FOLDER, path)
        return Drop(NOT_MODEL_FOLDER, path)
    if not path.exists():
        return Drop(MISSING, path)
    if path.suffix.lower() == ".gguf":
        return Drop(GGUF, path)
    return Drop(NOT_GGUF, path)
