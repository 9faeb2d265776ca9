"""Large models on a small machine: a fused graph's weights go straight into page-aligned
external data as the graph is built, and a GGUF too large for an fp32 copy is exported from
its blocks with the gate scaled down. The models are tiny; the thresholds that switch these
paths on for real models are lowered instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_decode import greedy, session
from tiny_models import build_family, cached, generator_key

from export import external_data
from export.builders import builder_for, load_config, shape_from_config
from export.cuda_graph import check_cuda_graph
from export.external_data import ALIGNMENT
from export.gguf_blocks import weights_from_gguf
from export.onnx_files import CUDA_FILE, DATA_FILE, MODEL_FILE, save_model
from export.pipeline import ExportSettings, export_model, load_gguf_config
from export.recipes import RECIPES, RecipeContext
from export.sources import resolve_source
from export.synthetic import SHAPES, write_gguf

PROMPT = [5, 17, 42, 99, 3, 250, 7, 64]


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random Q4_0 Llama GGUF (export/synthetic.py's tiny shape) and its config folder."""
    folder = tmp_path_factory.mktemp("gguf")
    write_gguf(SHAPES["tiny"], "q4_0", folder / "tiny.gguf")
    load_gguf_config(resolve_source(str(folder / "tiny.gguf")), folder / "hf")
    return folder / "tiny.gguf", folder / "hf"


def external_offsets(model_path: Path) -> dict[str, int]:
    model = onnx.load(str(model_path), load_external_data=False)
    return {init.name: int({e.key: e.value for e in init.external_data}["offset"])
            for init in model.graph.initializer
            if init.data_location == onnx.TensorProto.EXTERNAL}


def apply(recipe: str, source: Path, hf_dir: Path, out: Path, threshold: int | None) -> Path:
    context = RecipeContext(source, source.suffix == ".gguf", hf_dir,
                            **({} if threshold is None else {"external_data_bytes": threshold}))
    RECIPES[recipe].apply(None, out / "onnx" / MODEL_FILE, context)  # type: ignore[arg-type]
    return out / "onnx" / MODEL_FILE


@pytest.mark.parametrize("kind", ["gguf", "folder"])
def test_weights_streamed_to_external_data_give_the_same_model(
        kind: str, tiny_gguf: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same recipe, once kept in one file as for the default model and once with every
    large weight written to model.onnx_data at 64 KiB-aligned offsets: the same greedy tokens
    and bit-identical logits, from the CPU graph and from its CUDA twin, which reads the big
    tensors from the CPU graph's data file."""
    if kind == "gguf":
        source, hf_dir = tiny_gguf
        recipe = "q4-gguf"
    else:
        source = hf_dir = cached("family-src-llama", generator_key(),
                                 lambda f: build_family("llama", f))
        recipe = "int8-fused"
    inline = apply(recipe, source, hf_dir, tmp_path / "inline", None)
    # Tiny tensors: let those of 4 KiB and more go out, as a real model's megabytes do.
    monkeypatch.setattr(external_data, "MIN_EXTERNAL_BYTES", 4096)
    streamed = apply(recipe, source, hf_dir, tmp_path / "streamed", 0)
    assert not inline.with_name(DATA_FILE).exists()
    offsets = external_offsets(streamed)
    assert offsets and all(offset % ALIGNMENT == 0 for offset in offsets.values())
    assert streamed.with_name(DATA_FILE).stat().st_size >= max(offsets.values())
    want_tokens, want = greedy(session(inline), PROMPT, 8)
    got_tokens, got = greedy(session(streamed), PROMPT, 8)
    assert got_tokens == want_tokens
    assert np.array_equal(got, want)
    # The fp16 twin against its CPU graph: the same figures both ways.
    assert check_cuda_graph(streamed, streamed.with_name(CUDA_FILE), PROMPT) == (
        check_cuda_graph(inline, inline.with_name(CUDA_FILE), PROMPT))
    cuda = onnx.load(str(streamed.with_name(CUDA_FILE)), load_external_data=False)
    locations = {e.value for init in cuda.graph.initializer for e in init.external_data
                 if e.key == "location"}
    assert DATA_FILE in locations


def test_a_small_model_is_saved_as_before(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    """Streaming the weights changes nothing for a model under the external data threshold
    (the default model): the file is byte for byte the eagerly built graph's."""
    source, hf_dir = tiny_gguf
    streamed = apply("q4-gguf", source, hf_dir, tmp_path, None)
    shape = shape_from_config(load_config(hf_dir))
    from export.builders import FusedOptions

    options = FusedOptions(max_length=shape.context_length)
    eager = builder_for(shape).build(weights_from_gguf(source, shape), options)
    save_model(eager, tmp_path / "eager.onnx")
    assert streamed.read_bytes() == (tmp_path / "eager.onnx").read_bytes()


def test_a_gguf_too_large_for_fp32_is_exported_from_its_blocks(
        tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    """With the size rule lowered, the tiny GGUF takes the large-model route: no fp32 export,
    the gate against transformers run layer by layer on fewer tokens, said in the last line
    and the manifest; the engine loads the folder and decodes."""
    from desktop.engine import load_model
    from export.pipeline import DIRECT_GATE_TOKENS
    from export.progress import Progress

    lines: list[str] = []

    class Lines:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    result = export_model(ExportSettings(source=str(tiny_gguf[0]), out_dir=tmp_path,
                                         direct_fp32_bytes=0, external_data_bytes=0,
                                         force=True),
                          Progress(text=Lines()))  # type: ignore[arg-type]
    manifest = result.manifest
    validation = manifest["validation"]
    assert "layer by layer" in validation["reference"]
    assert validation["tokens"] == DIRECT_GATE_TOKENS and validation["windows"] == 1
    assert "layer by layer" in lines[-1] and "Exported" in lines[-1]
    assert not any("Optimum" in line for line in lines)
    assert manifest["quantization"]["recipe"] == "q4-gguf"
    assert manifest["onnx"]["data_file"] == f"onnx/{DATA_FILE}"
    assert f"onnx/{DATA_FILE}" in manifest["files"]
    model = load_model(result.path, device="cpu", threads=1)
    logits = model.decoder.forward(PROMPT)
    assert logits.shape == (SHAPES["tiny"].vocab_size,) and np.isfinite(logits).all()
