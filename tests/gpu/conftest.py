"""Fixtures of the GPU tests: the default model with its CUDA graph, and a place for figures.

These tests need a working NVIDIA GPU and onnxruntime-gpu; everywhere else they are skipped
with the reason. tests/gpu/run.sh runs them on such a machine without network: the model
folder and the project's runtime dependencies are all they need (``onnx`` only where a test
says so).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
#: run.sh sets this: the figures of the tests go to figures.json in that folder.
RESULTS_ENV = "ONNXCHAT_GPU_RESULTS"


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


@pytest.fixture(scope="session")
def figures() -> dict:
    """Measured figures by test; written to ``$ONNXCHAT_GPU_RESULTS/figures.json`` at the
    end of the session when that is set."""
    found: dict = {}
    yield found
    folder = os.environ.get(RESULTS_ENV)
    if folder and found:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "figures.json").write_text(json.dumps(found, indent=2) + "\n",
                                                   encoding="utf-8")
