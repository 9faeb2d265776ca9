"""The export pipeline: source → fp32 Hugging Face folder → ONNX → quantized ONNX →
validation → model folder, renamed into place only when everything succeeded."""

from __future__ import annotations

import gc
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import ExportError, ValidationFailedError, is_disk_full
from export.files import read_json, sha256_file, write_json
from export.gguf_tokenizer import rebuild_tokenizer
from export.loading import load_source, reference_logits
from export.manifest import (
    MANIFEST_FILE,
    architecture,
    build_manifest,
    context_length,
    genai_config,
    sampling_defaults,
    versions,
)
from export.onnx_export import export_onnx, quiet_libraries
from export.onnx_files import MODEL_FILE, read_io
from export.progress import Progress
from export.recipes import AUTO_RECIPE, DEFAULT_RECIPE, RECIPES, RecipeContext, choose_recipe
from export.source_check import llama_cpp_reference
from export.sources import (
    GgufInfo,
    Source,
    check_folder,
    check_name,
    read_gguf,
    resolve_source,
)
from export.staging import publish, remove_stale_partials, staging_dir, target_exists
from export.tokenizer_files import SOURCE_TOKENIZER, TokenizerInfo, write_tokenizer_files
from export.validation import (
    ValidationGate,
    ValidationResult,
    report_markdown,
    token_windows,
    validate,
    validation_text,
)


def default_out_dir() -> Path:
    """``$ONNXCHAT_MODELS_DIR``, else the ``models/`` folder of this source checkout."""
    env = os.environ.get("ONNXCHAT_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return root / "models"
    return Path.cwd() / "models"


@dataclass
class ExportSettings:
    source: str
    recipe: str = AUTO_RECIPE
    name: str | None = None  # default: derived from the source (plus the recipe if asked for)
    out_dir: Path = field(default_factory=default_out_dir)
    overwrite: bool = False
    force: bool = False  # keep a model that failed the validation gate, marked as such
    gate: ValidationGate = field(default_factory=ValidationGate)
    debug: bool = False


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    validation: ValidationResult
    seconds: float


def export_model(settings: ExportSettings, progress: Progress | None = None) -> ExportResult:
    """Export ``settings.source`` into ``settings.out_dir/<name>``.

    Raises :class:`ExportError` (one line for the user) on bad input, a refused validation
    gate or a full disk; nothing is left under the target name unless it succeeded.
    """
    progress = progress or Progress()
    if settings.recipe != AUTO_RECIPE and settings.recipe not in RECIPES:
        raise ExportError(
            f"Unknown quantization recipe {settings.recipe!r}: use one of "
            f"{', '.join([AUTO_RECIPE, *RECIPES])}."
        )
    source = resolve_source(settings.source)
    name = settings.name
    if name is None:
        name = source.default_name()
        if settings.recipe not in (AUTO_RECIPE, DEFAULT_RECIPE):
            name = f"{name}-{settings.recipe}"
    name = check_name(name)
    out_dir = Path(settings.out_dir).expanduser()
    target = out_dir / name
    if (target.exists() or target.is_symlink()) and not settings.overwrite:
        raise target_exists(target)

    gguf = read_gguf(source) if source.is_gguf else None
    if not source.is_gguf:
        check_folder(source)
    _prepare_out_dir(out_dir)
    remove_stale_partials(out_dir)
    try:
        with quiet_libraries(settings.debug), staging_dir(out_dir, name) as partial:
            return _export(settings, source, gguf, name, target, partial, progress)
    except Exception as exc:
        if is_disk_full(exc):
            raise ExportError(
                f"The disk is full (while writing {getattr(exc, 'filename', None) or out_dir}): "
                f"free space on the disk of {out_dir} and export again (an export needs about "
                "three times the model's fp32 size, 1.5 GB for the default model); nothing "
                "was kept."
            ) from exc
        raise


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"Cannot create the output folder {out_dir} ({exc.strerror}): pass another "
            "folder with --out."
        ) from None
    if not os.access(out_dir, os.W_OK):
        raise ExportError(
            f"The output folder {out_dir} is not writable: pass another folder with --out."
        )


def _describe(source: Source) -> str:
    if source.kind == "default":
        return f"the default model ({source.id}, GGUF dequantized to fp32)"
    if source.kind == "gguf":
        return f"{source.path.name} (GGUF dequantized to fp32)"
    if source.kind == "hub":
        return f"{source.id} from the local Hugging Face cache"
    return f"the model folder {source.path}"


def _export(
    settings: ExportSettings,
    source: Source,
    gguf: GgufInfo | None,
    name: str,
    target: Path,
    partial: Path,
    progress: Progress,
) -> ExportResult:
    from tokenizers import Tokenizer

    recipe = choose_recipe(settings.recipe, source.path, source.is_gguf)
    gate = settings.gate
    hf_dir = partial / "hf"
    model_dir = partial / "model"

    progress.step("load", f"Loading {_describe(source)}")
    loaded = load_source(source, gguf, hf_dir)
    context = context_length(loaded.config)
    text = validation_text()
    hf_tokenizer, origin, source_stops = loaded.tokenizer, SOURCE_TOKENIZER, None
    if source.is_gguf:  # tokenize as llama.cpp does for the file, not as converted
        rebuilt = rebuild_tokenizer(source.path, hf_dir)
        origin, source_stops = rebuilt.origin, rebuilt.stop_token_ids
        hf_tokenizer = rebuilt.hf_tokenizer or hf_tokenizer
    tokens = write_tokenizer_files(
        hf_dir, hf_tokenizer, model_dir, gguf=gguf, context_length=context, check_text=text,
        origin=origin, source_stop_ids=source_stops,
    )
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    token_ids = tokenizer.encode(text, add_special_tokens=False).ids
    reference_ids = token_ids[: min(gate.reference_tokens, context)]
    reference = reference_logits(loaded.model, reference_ids)
    config = loaded.config
    del loaded
    gc.collect()

    progress.step("onnx", "Exporting to ONNX with Optimum (the longest step)")
    fp32_model = export_onnx(hf_dir, partial / "onnx")

    progress.step("quantize", f"Quantizing: {recipe.description}")
    shipped = model_dir / "onnx" / MODEL_FILE
    facts = recipe.apply(fp32_model, shipped, RecipeContext(source.path, source.is_gguf, hf_dir))
    quantization = {**recipe.manifest(), **facts}

    progress.step("validate", f"Validating on {len(token_ids[: gate.max_tokens])} tokens")
    source_reference = None
    if source.is_gguf:
        windows = token_windows(token_ids, context, gate)
        source_reference = llama_cpp_reference(source.path, text, token_ids, windows, tokenizer)
    result = validate(
        fp32_model, shipped if recipe.quantizes else None, token_ids, context, gate, reference,
        source_reference,
    )
    if not result.passed:
        failures = "; ".join(result.failures())
        if not settings.force:
            other = "--quant fp32" if recipe.name == DEFAULT_RECIPE else (
                f"--quant {DEFAULT_RECIPE} (near-lossless)"
            )
            raise ValidationFailedError(
                f"The {recipe.name} model failed the quality gate ({failures}); nothing was "
                f"kept. Try {other}, or pass --force to keep it anyway."
            )
        result.forced = True
    progress.step("write", f"Writing {target}")
    shutil.rmtree(partial / "onnx")
    manifest = _write_folder(
        model_dir, name, source, config, hf_dir, context, tokens, quantization, result
    )
    shutil.rmtree(hf_dir)
    publish(model_dir, target, settings.overwrite)
    progress.done(f"Exported {name} to {target}: {result.summary()}")
    return ExportResult(target, manifest, result, progress.elapsed())


def _write_folder(
    model_dir: Path,
    name: str,
    source: Source,
    config: Any,
    hf_dir: Path,
    context: int,
    tokens: TokenizerInfo,
    quantization: dict[str, Any],
    result: ValidationResult,
) -> dict[str, Any]:
    """Everything besides the tokenizer files and the ONNX graph, the manifest last."""
    shutil.copyfile(hf_dir / "config.json", model_dir / "config.json")
    generation_path = hf_dir / "generation_config.json"
    generation = read_json(generation_path) if generation_path.is_file() else {}
    sampling = sampling_defaults(generation)
    stop_ids = tokens.stop_token_ids
    # Runtimes that read only generation_config.json (Optimum, transformers.js) stop at
    # every stop token, not just the first eos.
    generation["eos_token_id"] = stop_ids if len(stop_ids) > 1 else stop_ids[0]
    if tokens.special_tokens["bos_token_id"] is not None:
        generation["bos_token_id"] = tokens.special_tokens["bos_token_id"]
    if tokens.special_tokens["pad_token_id"] is not None:
        generation["pad_token_id"] = tokens.special_tokens["pad_token_id"]
    write_json(model_dir / "generation_config.json", generation)

    io = read_io(model_dir / "onnx" / MODEL_FILE)
    arch = architecture(config, io.cache_shape)
    genai = genai_config(
        arch,
        io,
        context,
        tokens,
        sampling,
        shared_buffer=io.past_present_share_buffer,
        max_length=io.max_length,
    )
    write_json(model_dir / "genai_config.json", genai)
    (model_dir / "validation_report.md").write_text(
        report_markdown(name, quantization, result), encoding="utf-8"
    )
    source_info = {
        "kind": source.kind,
        "id": source.id,
        "path": str(source.path),
        "sha256": sha256_file(source.path) if source.path.is_file() else None,
    }
    manifest = build_manifest(
        folder=model_dir,
        name=name,
        source=source_info,
        arch=arch,
        context=context,
        io=io,
        tokens=tokens,
        sampling=sampling,
        quantization=quantization,
        validation=result,
        versions_used=versions(),
    )
    write_json(model_dir / MANIFEST_FILE, manifest)
    return manifest
