"""manifest.json and genai_config.json: how a model folder describes itself.

The app, onnxruntime-genai and transformers.js read these instead of guessing, so the values
come from the exported graph (input names, cache shapes) and from token ids, not names.
The format is documented in models/README.md.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from pathlib import Path
from typing import Any

from export.files import file_table
from export.onnx_files import CUDA_FILE, DATA_FILE, PAST_PREFIX, PRESENT_PREFIX, OnnxIO
from export.tokenizer_files import TokenizerInfo
from export.validation import ValidationResult

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "onnx/model.onnx"
CUDA_ONNX_FILE = f"onnx/{CUDA_FILE}"
#: ``onnx.graphs`` key of the CPU graph with an int8 KV cache (export/int8_cache.py).
INT8_CACHE_GRAPH = "cpu-int8kv"
SAMPLING_FALLBACK: dict[str, Any] = {
    "temperature": 0.7,
    "top_k": 40,
    "top_p": 0.95,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "max_new_tokens": 512,
}
# Model types onnxruntime-genai knows by name and runs as a plain decoder with a per-layer
# key/value cache. Any other decoder with the standard inputs runs under genai's generic
# "decoder" type; naming it "gpt2" would make genai expect GPT-2's old combined cache.
GENAI_MODEL_TYPES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "phi", "phi3", "gemma", "gemma2", "granite",
     "olmo", "nemotron", "smollm3"}
)
GENAI_GENERIC_TYPE = "decoder"
# The only inputs onnxruntime-genai feeds a decoder besides the cache.
GENAI_INPUTS = frozenset({"input_ids", "attention_mask", "position_ids"})


def architecture(config: Any, cache_shape: list[Any] | None) -> dict[str, Any]:
    """Layer and head counts. The cache shape of the graph (``[batch, kv_heads, length,
    head_dim]``) wins over the config, since it is what a runtime must allocate."""
    heads = int(config.num_attention_heads)
    hidden = int(config.hidden_size)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    if cache_shape and len(cache_shape) == 4:
        if isinstance(cache_shape[1], int):
            kv_heads = cache_shape[1]
        if isinstance(cache_shape[3], int):
            head_dim = cache_shape[3]
    return {
        "model_type": config.model_type,
        "num_layers": int(config.num_hidden_layers),
        "num_attention_heads": heads,
        "num_key_value_heads": int(kv_heads),
        "head_dim": int(head_dim),
        "hidden_size": hidden,
        "vocab_size": int(config.vocab_size),
    }


def context_length(config: Any) -> int:
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError("the model config declares no maximum sequence length")


def sampling_defaults(generation_config: dict[str, Any]) -> dict[str, Any]:
    """The source's own sampling settings where it sets them, else sensible chat defaults."""
    defaults = dict(SAMPLING_FALLBACK)
    for key in defaults:
        value = generation_config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            defaults[key] = value
    return defaults


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "onnxchat": _onnxchat_version(),
        "optimum": dist("optimum"),
        "optimum-onnx": dist("optimum-onnx"),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "tokenizers": dist("tokenizers"),
    }


def _onnxchat_version() -> str:
    """From the installed distribution, else from the checkout's pyproject.toml."""
    try:
        return importlib.metadata.version("onnxchat")
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib

        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (ImportError, OSError, KeyError):
        return "unknown"


def genai_runs(io: OnnxIO) -> bool:
    """Whether onnxruntime-genai can drive the graph: ``input_ids`` and ``attention_mask``
    (``position_ids`` optional), ``past_key_values.N.key/value`` shaped ``[batch, kv_heads,
    length, head_dim]``, ``logits``. Graphs that want more (``token_type_ids``) or another
    cache shape (a fused or transposed one) do not load."""
    cache = [name for name in io.inputs if name.startswith(PAST_PREFIX)]
    others = [name for name in io.inputs if name not in GENAI_INPUTS and name not in cache]
    return (
        not others
        and {"input_ids", "attention_mask"} <= set(io.inputs)
        and bool(cache)
        and all(name.endswith((".key", ".value")) for name in cache)
        and len(io.cache_shape) == 4
        and "logits" in io.outputs
    )


def targets(io: OnnxIO, has_external_data: bool) -> list[str]:
    """Runtimes that load the folder unchanged; tests/runtimes checks each of them on both
    layouts. The fused graph runs in Optimum and transformers.js (Node) too: its contrib ops
    are in the CPU builds of onnxruntime they use, GroupQueryAttention also takes separate
    past and present buffers (the cache then grows per call, as in the Optimum layout), and
    generation reads only the last position's logits; Optimum warns that there is no
    ``position_ids`` input."""
    found = ["onnxchat", "optimum"]
    if genai_runs(io):
        found.append("genai")
    if not has_external_data:  # transformers.js needs a config flag for external data
        found.append("transformers.js")
    return found


def genai_config(
    arch: dict[str, Any],
    io: OnnxIO,
    context: int,
    tokens: TokenizerInfo,
    sampling: dict[str, Any],
    *,
    shared_buffer: bool = False,
    max_length: int | None = None,
) -> dict[str, Any]:
    """onnxruntime-genai's config, following the graph: ``position_ids`` only when the graph
    has it, and ``past_present_share_buffer`` only for a graph whose attention writes into a
    preallocated cache (GroupQueryAttention, the fused layout; ``max_length`` then bounds
    positions). The plain Optimum export concatenates its cache, so past and present are
    separate buffers there."""
    inputs = {"input_ids": "input_ids", "attention_mask": "attention_mask"}
    if io.uses_position_ids:
        inputs["position_ids"] = "position_ids"
    inputs["past_key_names"] = PAST_PREFIX + "%d.key"
    inputs["past_value_names"] = PAST_PREFIX + "%d.value"
    special = tokens.special_tokens
    eos_ids = tokens.stop_token_ids
    pad = special["pad_token_id"] if special["pad_token_id"] is not None else eos_ids[0]
    if max_length is not None:
        context = min(context, max_length)
    model_type = arch["model_type"]
    config: dict[str, Any] = {
        "model": {
            "context_length": context,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": ONNX_FILE,
                "head_size": arch["head_dim"],
                "hidden_size": arch["hidden_size"],
                "inputs": inputs,
                "outputs": {
                    "logits": "logits",
                    "present_key_names": PRESENT_PREFIX + "%d.key",
                    "present_value_names": PRESENT_PREFIX + "%d.value",
                },
                "num_attention_heads": arch["num_attention_heads"],
                "num_hidden_layers": arch["num_layers"],
                "num_key_value_heads": arch["num_key_value_heads"],
            },
            "eos_token_id": list(eos_ids),
            "pad_token_id": pad,
            "type": model_type if model_type in GENAI_MODEL_TYPES else GENAI_GENERIC_TYPE,
            "vocab_size": arch["vocab_size"],
        },
        "search": {
            "diversity_penalty": 0.0,
            "do_sample": True,
            "early_stopping": True,
            "length_penalty": 1.0,
            "max_length": context,
            "min_length": 0,
            "no_repeat_ngram_size": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": shared_buffer,
            "repetition_penalty": sampling["repetition_penalty"],
            "temperature": sampling["temperature"],
            "top_k": sampling["top_k"],
            "top_p": sampling["top_p"],
        },
    }
    if special["bos_token_id"] is not None:  # genai refuses null where it expects a number
        config["model"]["bos_token_id"] = special["bos_token_id"]
    return config


def graphs_table(
    folder: Path, io: OnnxIO, cuda_check: dict[str, Any] | None,
    int8_cache: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """``onnx.graphs``: the graph each device runs. The plain layout's one graph runs on both;
    a fused export has its fp16 twin for CUDA, which reads its weight blocks from the CPU
    graph's file (``weights_from``) and was checked against it on the CPU (``check``), and
    ``cpu-int8kv``: the CPU graph with an int8 KV cache, gated like the CPU graph, or the
    reason it is not shipped (``export/int8_cache.py``)."""
    cpu = {"file": ONNX_FILE, "dtype": "float32"}
    if (folder / CUDA_ONNX_FILE).is_file():
        table = {"cpu": cpu, "cuda": {"file": CUDA_ONNX_FILE, "dtype": "float16",
                                      "weights_from": ONNX_FILE, "check": cuda_check}}
    elif io.past_present_share_buffer:
        table = {"cpu": cpu}
    else:
        table = {"cpu": cpu, "cuda": cpu}
    if int8_cache is not None:
        table[INT8_CACHE_GRAPH] = int8_cache
    return table


def build_manifest(
    *,
    folder: Path,
    name: str,
    source: dict[str, Any],
    arch: dict[str, Any],
    context: int,
    io: OnnxIO,
    graphs: dict[str, dict[str, Any]],
    tokens: TokenizerInfo,
    sampling: dict[str, Any],
    quantization: dict[str, Any],
    validation: ValidationResult,
    versions_used: dict[str, str],
) -> dict[str, Any]:
    """The manifest of the finished ``folder``; call it last, it hashes every file."""
    has_data = (folder / "onnx" / DATA_FILE).is_file()
    return {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "source": source,
        "architecture": arch,
        "context_length": context,
        "onnx": {
            "file": ONNX_FILE,
            "data_file": f"onnx/{DATA_FILE}" if has_data else None,
            "inputs": io.inputs,
            "outputs": io.outputs,
            "past_key_prefix": PAST_PREFIX,
            "present_key_prefix": PRESENT_PREFIX,
            "uses_position_ids": io.uses_position_ids,
            "layout": io.layout,
            "past_present_share_buffer": io.past_present_share_buffer,
            "max_length": io.max_length,
            "graphs": graphs,
        },
        "tokenizer": {
            "file": "tokenizer.json",
            "canonicalised": tokens.canonicalised,
            "origin": tokens.origin,
        },
        "chat_template": {"file": "chat_template.jinja"} if tokens.chat_template else None,
        "special_tokens": tokens.special_tokens,
        "stop_token_ids": tokens.stop_token_ids,
        "sampling_defaults": sampling,
        "quantization": quantization,
        "validation": validation.manifest(),
        "versions": versions_used,
        "files": file_table(folder, exclude=frozenset({MANIFEST_FILE})),
        "targets": targets(io, has_data),
    }
