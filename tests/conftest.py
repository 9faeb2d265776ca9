"""Fixtures shared by every test package: the repository's model store and real models."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every test, and every process a test starts, out of the user's own data folder:
    the terminal chat keeps its chats in the history by default."""
    folder = tmp_path_factory.mktemp("user-data")
    previous = os.environ.get("ONNXCHAT_DATA_DIR")
    os.environ["ONNXCHAT_DATA_DIR"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["ONNXCHAT_DATA_DIR"]
    else:
        os.environ["ONNXCHAT_DATA_DIR"] = previous


# Tiny models, built once and cached under models/.cache/ (see tests/tiny_models.py).


@pytest.fixture(scope="session")
def tiny_gpt2_hf() -> Path:
    """A Hugging Face folder: GPT-2, 2 layers, 2 heads, width 64, context 128, random."""
    from tiny_models import build_gpt2, cached, generator_key

    return cached("tiny-gpt2-hf", generator_key(), build_gpt2)


@pytest.fixture(scope="session")
def tiny_llama_hf() -> Path:
    """A Hugging Face folder: Llama, 2 layers, width 64, 4 heads, 2 KV heads, context 128."""
    from tiny_models import build_llama, cached, generator_key

    return cached("tiny-llama-hf", generator_key(), build_llama)


@pytest.fixture(scope="session")
def tiny_llama_gguf(tiny_llama_hf: Path) -> Path:
    """The tiny Llama as a GGUF file (f32 tensors, tokenizer and chat template in the header;
    bos <|im_start|>, eos <|im_end|>)."""
    from tiny_models import build_llama_gguf, cached, generator_key

    folder = cached("tiny-llama-gguf", generator_key(), build_llama_gguf(tiny_llama_hf))
    return folder / "tiny-llama.gguf"


@pytest.fixture(scope="session")
def tiny_gpt2_model(tiny_gpt2_hf: Path) -> Path:
    """The tiny GPT-2 exported by the export pipeline, fp32: a model folder."""
    from tiny_models import cached, export_key, export_tiny

    return cached("tiny-gpt2-fp32", export_key(), export_tiny(tiny_gpt2_hf, "fp32")) / "model"


@pytest.fixture(scope="session")
def tiny_gpt2_int8_model(tiny_gpt2_hf: Path) -> Path:
    """The tiny GPT-2 exported with the int8 recipe (MatMulNBits): a model folder."""
    from tiny_models import cached, export_key, export_tiny

    return cached("tiny-gpt2-int8", export_key(), export_tiny(tiny_gpt2_hf, "int8")) / "model"


@pytest.fixture(scope="session")
def tiny_llama_model(tiny_llama_hf: Path) -> Path:
    """The tiny Llama exported by the export pipeline, fp32: a model folder."""
    from tiny_models import cached, export_key, export_tiny

    return cached("tiny-llama-fp32", export_key(), export_tiny(tiny_llama_hf, "fp32")) / "model"
