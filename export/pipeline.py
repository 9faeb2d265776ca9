"""The export pipeline: source → fp32 Hugging Face folder → ONNX → quantized ONNX →
validation → model folder, renamed into place only when everything succeeded."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import (
    ExportError,
    FusedLayoutError,
    ValidationFailedError,
    first_line,
    is_disk_full,
)
from export.files import read_json, sha256_file, write_json
from export.gguf_tokenizer import rebuild_tokenizer
from export.int8_cache import int8_cache_entry
from export.loading import converted_tokenizer, load_source, reference_logits
from export.manifest import (
    MANIFEST_FILE,
    architecture,
    build_manifest,
    context_length,
    genai_config,
    graphs_table,
    sampling_defaults,
    versions,
)
from export.onnx_export import export_onnx, quiet_libraries
from export.onnx_files import (
    CUDA_FILE,
    DATA_FILE,
    EXTERNAL_DATA_THRESHOLD,
    MODEL_FILE,
    read_io,
)
from export.progress import Progress
from export.recipes import (
    AUTO_RECIPE,
    DEFAULT_RECIPE,
    RECIPES,
    GgufBlocksRecipe,
    Recipe,
    RecipeContext,
    RecipePlan,
    plan_recipes,
)
from export.source_check import llama_cpp_reference
from export.sources import (
    GgufInfo,
    Source,
    check_folder,
    check_model_type,
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
    validate_against_logits,
    validation_text,
)

#: Above this fp32 size (a 0.5B model) a GGUF that carries into the fused graph is exported
#: straight from its blocks: the fp32 route needs about three times this in RAM (transformers'
#: model, Optimum's export and the gate's fp32 graph), which a 7B model (28 GB in fp32) cannot
#: get on a 24 GB machine. The rule is by size, not by the machine, so an export does the same
#: on every machine.
DIRECT_FP32_BYTES = 2 * 1024**3
#: The recipes that ship a GGUF's own blocks, so a large GGUF can skip the fp32 route.
DIRECT_RECIPES = (AUTO_RECIPE, "q4-gguf")
#: Tokens the gate scores when there is no fp32 export to compare with (each is one decode
#: step of the shipped graph and one position of the layer-by-layer reference).
DIRECT_GATE_TOKENS = 64


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
    #: a GGUF whose weights take more than this in fp32 is exported straight from its blocks
    direct_fp32_bytes: int = DIRECT_FP32_BYTES
    #: a fused graph whose weights reach this keeps them in ``model.onnx_data``
    external_data_bytes: int = EXTERNAL_DATA_THRESHOLD
    #: the memory the fp32 route may count on (default: this machine's RAM)
    memory_bytes: int | None = None


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
    direct = gguf is not None and _exports_directly(settings, gguf)
    if not direct:
        _check_fp32_fits(settings, source, gguf)
    _prepare_out_dir(out_dir)
    remove_stale_partials(out_dir)
    try:
        with quiet_libraries(settings.debug), staging_dir(out_dir, name) as partial:
            if direct:
                return _export_direct(settings, source, gguf, name, target, partial, progress)
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


def _exports_directly(settings: ExportSettings, gguf: GgufInfo) -> bool:
    """Whether a GGUF source skips the fp32 route (:data:`DIRECT_FP32_BYTES`): only when its
    own blocks are what would be shipped (``auto`` or ``q4-gguf``) and a fused builder
    reads its architecture."""
    from export.gguf_blocks import GGUF_FAMILIES

    return (settings.recipe in DIRECT_RECIPES and gguf.fp32_bytes > settings.direct_fp32_bytes
            and gguf.architecture in GGUF_FAMILIES)


def _check_fp32_fits(settings: ExportSettings, source: Source, gguf: GgufInfo | None) -> None:
    """Refuse a source the fp32 route cannot hold on this machine, saying what would work."""
    from export.memory import check_fp32_fits, folder_fp32_bytes, physical_memory

    memory = settings.memory_bytes if settings.memory_bytes is not None else physical_memory()
    if gguf is not None:
        if settings.recipe not in DIRECT_RECIPES:
            instead = ("Export it with the auto or q4-gguf recipe: a large GGUF then goes "
                       "straight from its blocks into the graph.")
        else:
            instead = ("Its architecture has no fused graph builder, so its blocks cannot go "
                       "straight into the graph (models/README.md lists the families).")
        check_fp32_fits(source.path.name, gguf.fp32_bytes, memory, instead)
    elif source.path.is_dir():
        check_fp32_fits(
            f"The model folder {source.path}", folder_fp32_bytes(source.path), memory,
            "Convert it to a GGUF (llama.cpp's convert_hf_to_gguf.py, then llama-quantize, "
            "e.g. to Q4_K_M) and export that file: a large GGUF goes straight from its "
            "blocks into the graph.")


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
        hf_tokenizer = rebuilt.hf_tokenizer or converted_tokenizer(source, hf_dir)
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
    plan = plan_recipes(settings.recipe, source.path, source.is_gguf, config.to_dict())
    if plan.note:
        progress.note(plan.note)

    progress.step("onnx", "Exporting to ONNX with Optimum (the longest step)")
    fp32_model = export_onnx(hf_dir, partial / "onnx")

    shipped = model_dir / "onnx" / MODEL_FILE
    source_reference = None  # a GGUF's own runtime, llama.cpp, on the same tokens
    if source.is_gguf:
        windows = token_windows(token_ids, context, gate)
        source_reference = llama_cpp_reference(source.path, text, token_ids, windows, tokenizer)

    def gate_of(model: Path, positions: int) -> ValidationResult:
        return validate(fp32_model, model, token_ids, positions, gate, reference,
                        source_reference)

    def check(recipe: Recipe, facts: dict[str, Any]) -> ValidationResult:
        progress.step("validate", f"Validating on {len(token_ids[: gate.max_tokens])} tokens")
        positions = min(context, facts.get("max_length") or context)  # a fused graph's bound
        if not recipe.quantizes:
            return validate(fp32_model, None, token_ids, positions, gate, reference,
                            source_reference)
        return gate_of(shipped, positions)

    recipe, result, facts, tried, note = _try_recipes(
        settings, plan, fp32_model, shipped, RecipeContext(
            source.path, source.is_gguf, hf_dir, settings.external_data_bytes), check, progress)
    exported = _finish(settings, source, name, target, model_dir, hf_dir, config, context,
                       tokens, token_ids, plan, recipe, result, facts, tried, note, progress,
                       lambda model: gate_of(model, min(context, facts.get("max_length")
                                                        or context)),
                       len(token_ids[: gate.max_tokens]), tokenizer)
    shutil.rmtree(partial / "onnx")
    return exported


def _export_direct(
    settings: ExportSettings,
    source: Source,
    gguf: GgufInfo,
    name: str,
    target: Path,
    partial: Path,
    progress: Progress,
) -> ExportResult:
    """A GGUF too large for an fp32 copy (:data:`DIRECT_FP32_BYTES`), exported straight from
    its blocks: config and tokenizer from its header, the fused graph written tensor by
    tensor into external data, and the gate against transformers run layer by layer on the
    file's dequantized weights (``export/layerwise.py``) over the first
    :data:`DIRECT_GATE_TOKENS` tokens, and against llama.cpp on the same tokens."""
    from tokenizers import Tokenizer

    from export.builders import load_config, shape_from_config
    from export.errors import FusedLayoutError
    from export.layerwise import METHOD, layerwise_logits

    hf_dir = partial / "hf"
    model_dir = partial / "model"
    progress.step("load", f"Reading {source.path.name}: its blocks go straight into the graph "
                  f"(no fp32 copy, which would take {gguf.fp32_bytes / 1e9:.1f} GB)")
    config = load_gguf_config(source, hf_dir)
    context = context_length(config)
    text = validation_text()
    rebuilt = rebuild_tokenizer(source.path, hf_dir)
    hf_tokenizer = rebuilt.hf_tokenizer or converted_tokenizer(source, hf_dir)
    tokens = write_tokenizer_files(
        hf_dir, hf_tokenizer, model_dir, gguf=gguf, context_length=context, check_text=text,
        origin=rebuilt.origin, source_stop_ids=rebuilt.stop_token_ids,
    )
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    token_ids = tokenizer.encode(text, add_special_tokens=False).ids
    gate = dataclasses.replace(settings.gate, max_tokens=min(DIRECT_GATE_TOKENS, context),
                               window=min(DIRECT_GATE_TOKENS, context))
    plan = plan_recipes(settings.recipe, source.path, True, config.to_dict())
    blocks = tuple(c for c in plan.candidates if isinstance(c, GgufBlocksRecipe))
    if not blocks:
        raise FusedLayoutError(settings.recipe, plan.note or "the fused layout cannot build it")
    plan = dataclasses.replace(plan, candidates=blocks, fallback=())
    windows = token_windows(token_ids, context, gate)
    progress.step("onnx", f"Computing the gate's reference layer by layer on "
                  f"{len(windows[0])} tokens")
    shape = shape_from_config(load_config(hf_dir))
    reference = layerwise_logits(source.path, config, shape, [int(t) for t in windows[0]])
    source_reference = llama_cpp_reference(source.path, text, token_ids, windows, tokenizer)
    shipped = model_dir / "onnx" / MODEL_FILE

    def gate_of(model: Path) -> ValidationResult:
        return validate_against_logits(model, token_ids, windows[0], reference, METHOD, gate,
                                       source_reference)

    def check(recipe: Recipe, facts: dict[str, Any]) -> ValidationResult:
        progress.step("validate", f"Validating on {len(windows[0])} tokens")
        return gate_of(shipped)

    recipe, result, facts, tried, note = _try_recipes(
        settings, plan, None, shipped, RecipeContext(
            source.path, True, hf_dir, settings.external_data_bytes), check, progress)
    return _finish(settings, source, name, target, model_dir, hf_dir, config, context, tokens,
                   token_ids, plan, recipe, result, facts, tried, note, progress, gate_of,
                   len(windows[0]), tokenizer)


def load_gguf_config(source: Source, hf_dir: Path) -> Any:
    """transformers' config of a GGUF file, saved with its generation config in ``hf_dir``
    (what the tokenizer files and the model folder are written from)."""
    from transformers import AutoConfig, GenerationConfig

    try:
        config = AutoConfig.from_pretrained(source.path.parent, gguf_file=source.path.name)
    except Exception as exc:
        raise ExportError(
            f"Could not read the config of {source.spec}: {first_line(exc)}.") from exc
    check_model_type(config.model_type, source.spec)
    config.save_pretrained(hf_dir)
    GenerationConfig.from_model_config(config).save_pretrained(hf_dir)
    return config


def _try_recipes(
    settings: ExportSettings,
    plan: RecipePlan,
    fp32_model: Path | None,
    shipped: Path,
    recipe_context: RecipeContext,
    check: Callable[[Recipe, dict[str, Any]], ValidationResult],
    progress: Progress,
) -> tuple[Recipe, ValidationResult, dict[str, Any], list[dict[str, Any]], str | None]:
    """Apply the plan's recipes in order until one passes the gate (``check``); returns the
    one kept, its gate result and facts, every try, and the note for the manifest."""
    gate = settings.gate
    tried: list[dict[str, Any]] = []
    candidates, note = list(plan.candidates), plan.note
    while candidates:
        recipe = candidates.pop(0)
        _remove_model(shipped)
        progress.step("quantize", f"Quantizing: {recipe.description}"
                      + (f" [{recipe.label()}]" if recipe.label() != recipe.name else ""))
        try:
            facts = recipe.apply(fp32_model, shipped, recipe_context)  # type: ignore[arg-type]
        except FusedLayoutError as exc:
            # Every recipe of the same kind would fail alike: move on to the next kind.
            candidates = [c for c in candidates if type(c) is not type(recipe)]
            candidates = candidates or list(plan.fallback)
            if not candidates:
                raise
            tried.append({"recipe": recipe.label(), "passed": False, "error": exc.reason})
            layout = "" if candidates[0].fused else " in the Optimum layout"
            note = (f"{recipe.label()} cannot rebuild this model ({exc.reason}): trying "
                    f"{candidates[0].label()}{layout}.")
            progress.note(note)
            continue
        result = check(recipe, facts)
        tried.append({"recipe": recipe.label(), "passed": result.passed,
                      "perplexity_ratio": result.perplexity_ratio,
                      "top1_agreement": result.top1_agreement})
        fp32_broken = (result.fp32_max_logit_diff or 0.0) > gate.max_fp32_logit_diff
        if result.passed or fp32_broken:  # a broken fp32 export fails every recipe alike
            break
    if not result.passed:
        if not settings.force:
            raise ValidationFailedError(_gate_refusal(plan, recipe, result, tried))
        result.forced = True
    return recipe, result, facts, tried, note


def _finish(
    settings: ExportSettings,
    source: Source,
    name: str,
    target: Path,
    model_dir: Path,
    hf_dir: Path,
    config: Any,
    context: int,
    tokens: TokenizerInfo,
    token_ids: list[int],
    plan: RecipePlan,
    recipe: Recipe,
    result: ValidationResult,
    facts: dict[str, Any],
    tried: list[dict[str, Any]],
    note: str | None,
    progress: Progress,
    gate_of: Callable[[Path], ValidationResult],
    gate_tokens: int,
    tokenizer: Any,
) -> ExportResult:
    """Check the CUDA twin, add the int8-cache graph, write the folder's files and the
    manifest, publish it."""
    shipped = model_dir / "onnx" / MODEL_FILE
    cuda_check = None
    if shipped.with_name(CUDA_FILE).is_file():
        from export.cuda_graph import check_cuda_graph

        try:
            cuda_check = check_cuda_graph(shipped, shipped.with_name(CUDA_FILE), token_ids)
        except ValueError as exc:
            raise ValidationFailedError(
                f"The fp16 CUDA graph of the {recipe.name} model failed its check: {exc}; "
                f"nothing was kept. Try --quant {DEFAULT_RECIPE}, whose graph runs on CUDA "
                "in fp32."
            ) from None
    int8_cache = None
    if recipe.fused:
        progress.step("validate", f"Checking the int8-cache CPU graph on {gate_tokens} tokens")
        int8_cache = int8_cache_entry(shipped, tokenizer, gate_of,
                                      min(context, facts.get("max_length") or context))
        if "file" not in int8_cache:
            progress.note(f"No int8-cache graph: {int8_cache['reason']}")
    quantization = {**recipe.manifest(), **facts}
    if note:
        quantization["note"] = note
    if plan.auto:
        quantization["auto"] = {"chosen": recipe.label(), "tried": tried}
    progress.step("write", f"Writing {target}")
    manifest = _write_folder(
        model_dir, name, source, config, hf_dir, context, tokens, quantization, result,
        cuda_check.manifest() if cuda_check else None, int8_cache,
    )
    shutil.rmtree(hf_dir)
    publish(model_dir, target, settings.overwrite)
    progress.done(f"Exported {name} to {target}: {result.summary()}")
    return ExportResult(target, manifest, result, progress.elapsed())


def _remove_model(path: Path) -> None:
    """Delete a previous candidate's graph (and its data file) before the next one."""
    for stale in (path, path.with_name(DATA_FILE)):
        stale.unlink(missing_ok=True)


def _gate_refusal(plan: RecipePlan, recipe: Recipe, result: ValidationResult,
                  tried: list[dict[str, Any]]) -> str:
    """The one line a refused export prints."""
    failures = "; ".join(result.failures())
    if not plan.auto or len(tried) == 1:
        other = "--quant fp32" if recipe.name == DEFAULT_RECIPE else (
            f"--quant {DEFAULT_RECIPE} (near-lossless)"
        )
        return (f"The {recipe.label()} model failed the quality gate ({failures}); nothing was "
                f"kept. Try {other}, or pass --force to keep it anyway.")
    figures = ", ".join(
        f"{t['recipe']}: " + (t["error"] if "error" in t else (
            f"perplexity ratio {t['perplexity_ratio']:.3f}, top-1 {t['top1_agreement']:.3f}"))
        for t in tried)
    return (f"No recipe passed the quality gate (tried {figures}; last: {failures}); nothing "
            "was kept. Pass --quant with one of them and --force to keep it anyway.")


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
    cuda_check: dict[str, Any] | None,
    int8_cache: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything besides the tokenizer files and the ONNX graphs, the manifest last."""
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
        graphs=graphs_table(model_dir, io, cuda_check, int8_cache),
        tokens=tokens,
        sampling=sampling,
        quantization=quantization,
        validation=result,
        versions_used=versions(),
    )
    write_json(model_dir / MANIFEST_FILE, manifest)
    return manifest
