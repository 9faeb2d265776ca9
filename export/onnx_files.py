"""Reading and writing ONNX files, and running an exported decoder with onnxruntime.

One plain forward pass (input ids, attention mask, position ids when the graph has them,
and a past key/value cache) is all the validation gate and the tests need; names and
shapes come from the graph, so any Optimum ``text-generation-with-past`` export runs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from export.external_data import ExternalData

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx_data"
# The fp16 graph a fused export ships for CUDA, beside MODEL_FILE (export/cuda_graph.py).
CUDA_FILE = "model_cuda.onnx"
# The CPU graph with an int8 KV cache a fused export ships beside it (export/int8_cache.py).
INT8_CACHE_FILE = "model_int8kv.onnx"
# Its per-layer key and value scales, [layers, 2, kv_heads * head_size] float32, for runtimes
# that write that cache themselves (the app reads long prompts through the fp32 graph).
INT8_CACHE_SCALES_FILE = "model_int8kv_scales.npy"
# The orthogonal [head_size, head_size] matrix that graph caches each head's values rotated by.
INT8_CACHE_ROTATION_FILE = "model_int8kv_rotation.npy"
# protobuf cannot serialise a message of 2 GiB or more; keep a margin for the graph itself.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."
_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


@dataclass(frozen=True)
class OnnxIO:
    inputs: list[str]
    outputs: list[str]
    # dims of the first cache input ([batch, kv_heads, length, head_dim]); names if symbolic
    cache_shape: list[int | str]
    # "fused" for graphs built by export/builders/ (models/README.md, "Fused layout")
    layout: str = "optimum"
    max_length: int | None = None
    past_present_share_buffer: bool = False

    @property
    def uses_position_ids(self) -> bool:
        return "position_ids" in self.inputs


def read_io(model_path: Path) -> OnnxIO:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    props = {prop.key: prop.value for prop in model.metadata_props}
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    cache_shape: list[int | str] = []
    for value in inputs:
        if value.name.startswith(PAST_PREFIX):
            cache_shape = [
                dim.dim_value if dim.HasField("dim_value") else dim.dim_param
                for dim in value.type.tensor_type.shape.dim
            ]
            break
    return OnnxIO(
        inputs=[i.name for i in inputs],
        outputs=[o.name for o in graph.output],
        cache_shape=cache_shape,
        layout=props.get("onnxchat.layout", "optimum"),
        max_length=int(props["onnxchat.max_length"]) if "onnxchat.max_length" in props else None,
        past_present_share_buffer=props.get("onnxchat.past_present_share_buffer") == "true",
    )


def save_model(model: Any, path: Path) -> None:
    """Save a ModelProto, with its weights in ``model.onnx_data`` only when protobuf needs it."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() < EXTERNAL_DATA_THRESHOLD:
        onnx.save_model(model, str(path))
    else:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=DATA_FILE,
        )


def save_streamed(build: Callable[[ExternalData], Any], path: Path,
                  threshold: int = EXTERNAL_DATA_THRESHOLD) -> Any:
    """Save the ModelProto that ``build`` makes while writing its large initializers to
    ``model.onnx_data`` beside ``path`` (``export/external_data.py``), so no more than one
    tensor is held at a time. A model under ``threshold`` bytes in all is then saved as one
    self-contained file, as :func:`save_model` would: the data file is read back into the
    graph and removed. Returns the model as saved."""
    import onnx

    from export.external_data import ExternalData, inline

    path.parent.mkdir(parents=True, exist_ok=True)
    data = path.with_name(DATA_FILE)
    with ExternalData(data) as store:
        model = build(store)
    if store.written + model.ByteSize() < threshold:
        inline(model, data)
        data.unlink()
    onnx.save_model(model, str(path))
    return model


def link_or_copy_model(src: Path, dst: Path) -> None:
    """Place ``model.onnx`` (and its external data, same name) at ``dst`` without a copy
    when both are on one file system."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    pairs = [(src, dst)]
    data = src.with_name(DATA_FILE)
    if data.exists():
        pairs.append((data, dst.with_name(DATA_FILE)))
    for a, b in pairs:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)


def make_session(model_path: Path, threads: int | None = None) -> Any:
    """A CPU session: validation must give the same figures on every machine."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def forward(
    session: Any,
    input_ids: np.ndarray,
    past: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One decoder call for a batch of one: returns logits ``[1, T, vocab]`` and the new
    cache, keyed by the *input* names (``past_key_values.N.key``) so it can be fed back.

    A fused graph returns the last position's logits only; it is then fed one token at a time
    so every position still gets its logits (and the gate scores the decode path itself)."""
    ids = np.asarray(input_ids, dtype=np.int64).reshape(1, -1)
    logits_meta = next(o for o in session.get_outputs() if o.name == "logits")
    if ids.shape[1] > 1 and logits_meta.shape[1] == 1:
        steps = []
        for index in range(ids.shape[1]):
            logits, past = forward(session, ids[:, index : index + 1], past)
            steps.append(logits)
        return np.concatenate(steps, axis=1), past
    past = past if past is not None else empty_past(session)
    past_length = next(iter(past.values())).shape[2] if past else 0
    total = past_length + ids.shape[1]
    feeds: dict[str, np.ndarray] = {}
    for meta in session.get_inputs():
        if meta.name == "input_ids":
            feeds[meta.name] = ids.astype(_NUMPY_TYPES[meta.type])
        elif meta.name == "attention_mask":
            feeds[meta.name] = np.ones((1, total), dtype=_NUMPY_TYPES[meta.type])
        elif meta.name == "position_ids":
            positions = np.arange(past_length, total, dtype=_NUMPY_TYPES[meta.type])
            feeds[meta.name] = positions.reshape(1, -1)
        elif meta.name in past:
            feeds[meta.name] = past[meta.name]
        else:
            raise ValueError(f"unexpected decoder input {meta.name!r}")
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feeds)
    results = dict(zip(names, values, strict=True))
    present = {
        PAST_PREFIX + name[len(PRESENT_PREFIX):]: value
        for name, value in results.items()
        if name.startswith(PRESENT_PREFIX)
    }
    return results["logits"], present


def empty_past(session: Any) -> dict[str, np.ndarray]:
    """A zero-length cache shaped as the graph declares (batch 1, symbolic length 0)."""
    past = {}
    for meta in session.get_inputs():
        if meta.name.startswith(PAST_PREFIX):
            shape = [dim if isinstance(dim, int) else 0 for dim in meta.shape]
            shape[0] = 1
            past[meta.name] = np.zeros(shape, dtype=_NUMPY_TYPES[meta.type])
    return past
