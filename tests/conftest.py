"""Fixtures shared by every test package: the repository's model store and real models."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from environment import environment

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


def damage_history(data_dir: Path) -> None:
    """Write a history of one long conversation into ``data_dir``, then cut the file to half
    its size, as a crash of the disk or a bad copy leaves it."""
    from desktop.store import ChatStore

    with ChatStore.open(data_dir) as store:
        chat = store.create_conversation("Lost")
        for index in range(200):
            store.add_message(chat.id, "user", f"message {index} " + "lorem ipsum " * 30)
    path = data_dir / "chats.sqlite3"
    os.truncate(path, path.stat().st_size // 2)


@pytest.fixture(scope="session")
def damaged_history():
    """``damaged_history(data_dir)``: see :func:`damage_history`."""
    return damage_history


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every test, and every process a test starts, out of the user's own data folder:
    the terminal chat keeps its chats in the history by default."""
    folder = tmp_path_factory.mktemp("user-data")
    with environment("ONNXCHAT_DATA_DIR", str(folder)):
        yield folder


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the folded graphs (desktop/engine/folding.py) the suite builds out of the user's
    cache; built once per run, they serve every test and every process a test starts."""
    folder = tmp_path_factory.mktemp("user-cache")
    with environment("ONNXCHAT_CACHE_DIR", str(folder)):
        yield folder


@pytest.fixture(scope="session")
def cuda_default_model(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model folder with its CUDA graph. A folder exported before fused exports
    had one gets it added in a temporary copy (this needs the ``onnx`` package)."""
    manifest = json.loads((default_model / "manifest.json").read_text(encoding="utf-8"))
    if "cuda" in manifest["onnx"].get("graphs", {}):
        return default_model
    pytest.importorskip("onnx", reason="the model folder has no CUDA graph; re-export it "
                        "or install onnx to add one")
    import onnx

    from export.cuda_graph import write_cuda_graph
    from export.files import file_table
    from export.manifest import graphs_table
    from export.onnx_files import read_io

    folder = tmp_path_factory.mktemp("with-cuda-graph") / default_model.name
    shutil.copytree(default_model, folder, copy_function=_link_or_copy)
    cpu_graph = folder / "onnx" / "model.onnx"
    write_cuda_graph(onnx.load(str(cpu_graph)), cpu_graph)
    manifest["onnx"]["graphs"] = graphs_table(folder, read_io(cpu_graph), None)
    manifest["files"] = file_table(folder, exclude=frozenset({"manifest.json"}))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


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


@pytest.fixture(scope="session")
def tiny_llama_varied_hf() -> Path:
    """The tiny Llama with weights drawn wider and norm scales in [0.5, 1.5]
    (``build_llama(varied=True)``): varied output, and norms the fused graph can read."""
    import functools

    from tiny_models import build_llama, cached, generator_key

    return cached("tiny-llama-varied-hf", generator_key(),
                  functools.partial(build_llama, varied=True))


@pytest.fixture(scope="session")
def tiny_llama_fused_model(tiny_llama_varied_hf: Path) -> Path:
    """The varied tiny Llama exported with the int8-fused recipe: a model folder with the
    fused CPU graph and its fp16 CUDA graph."""
    from tiny_models import cached, export_key, export_tiny

    return cached("tiny-llama-int8-fused", export_key(),
                  export_tiny(tiny_llama_varied_hf, "int8-fused", force=True)) / "model"
