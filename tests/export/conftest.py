"""Fixtures of the export tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gguf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The default model's tokenizer as transformers converts it from the GGUF file, saved
    as a folder (the input the export canonicalises), and the tokenizer object itself."""
    from transformers import AutoTokenizer

    from export.sources import default_gguf_path

    gguf = default_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder = tmp_path_factory.mktemp("gguf-tokenizer")
    tokenizer.save_pretrained(folder)
    return folder, tokenizer
