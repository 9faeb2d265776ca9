"""Quantization recipes: named, frozen presets that turn the fp32 ONNX export into the
shipped ``onnx/model.onnx``.

Every recipe is checked afterwards by the validation gate, because a recipe that looks
reasonable can break a model (Optimum's dynamic int8 preset raised the default model's
perplexity by 221 %). New recipes (e.g. mapping GGUF blocks directly) subclass
:class:`Recipe` and register in :data:`RECIPES`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.graph_prep import prepare_for_weight_only
from export.onnx_files import (
    EXTERNAL_DATA_THRESHOLD,
    link_or_copy_model,
    save_model,
    save_streamed,
)


@dataclass(frozen=True)
class RecipeContext:
    """What a recipe may need beyond the fp32 graph: the original source and the Hugging Face
    folder (with the fp32 weights, except for a GGUF exported straight from its blocks: see
    ``export/pipeline.py``); a GGUF-block recipe reads the quantized blocks from the source.
    A fused graph whose weights reach ``external_data_bytes`` keeps them in
    ``model.onnx_data``."""

    source_path: Path
    source_is_gguf: bool
    hf_dir: Path
    external_data_bytes: int = EXTERNAL_DATA_THRESHOLD


@dataclass(frozen=True)
class Recipe(abc.ABC):
    name: str
    description: str

    @abc.abstractmethod
    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        """Write the quantized model to ``out_model`` (with ``model.onnx_data`` if needed);
        returns facts about what was done, recorded in the manifest next to the settings."""

    @property
    def quantizes(self) -> bool:
        """False when the result is the fp32 export itself (the gate compares nothing)."""
        return True

    @property
    def fused(self) -> bool:
        """Whether the result is the fused layout, which only some families have."""
        return False

    def label(self) -> str:
        """The name, with what sets this variant apart from the registered recipe."""
        return self.name

    def manifest(self) -> dict[str, Any]:
        """The recipe's settings for manifest.json ``quantization``."""
        fields = dataclasses.asdict(self)
        return {"recipe": fields.pop("name"), **fields}


@dataclass(frozen=True)
class NoQuantization(Recipe):
    method: str = "none"

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        link_or_copy_model(fp32_model, out_model)
        return {}

    @property
    def quantizes(self) -> bool:
        return False


@dataclass(frozen=True)
class WeightOnlyRecipe(Recipe):
    """onnxruntime's ``MatMulNBits`` weight-only quantization of every MatMul (the LM head
    included unless ``lm_head_bits`` is 32); activations stay fp32. 8 bits, block 32,
    symmetric is near-lossless on the default model (perplexity +1.9 %)."""

    method: str = "MatMulNBits"
    bits: int = 8
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    lm_head_bits: int = 8

    def label(self) -> str:
        return f"{self.name} (LM head fp32)" if self.lm_head_bits == 32 else self.name

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        model = onnx.load(str(fp32_model))
        rewrites = prepare_for_weight_only(model)
        config = DefaultWeightOnlyQuantConfig(
            block_size=self.block_size,
            is_symmetric=self.symmetric,
            accuracy_level=self.accuracy_level,
            bits=self.bits,
        )
        head = [n.name for n in model.graph.node if "logits" in n.output and n.op_type == "MatMul"]
        quantizer = MatMulNBitsQuantizer(
            model, algo_config=config, nodes_to_exclude=head if self.lm_head_bits == 32 else []
        )
        quantizer.process()
        quantized = quantizer.model.model
        save_model(quantized, out_model)
        count = sum(1 for node in quantized.graph.node if node.op_type == "MatMulNBits")
        return {"quantized_matmuls": count, **rewrites}


def _fused_builder(recipe: str, context: RecipeContext) -> Any:
    """The family's fused builder for the fp32 folder's config, or a one-line refusal."""
    from export.builders import builder_for, load_config, shape_from_config
    from export.errors import FusedLayoutError

    try:
        return builder_for(shape_from_config(load_config(context.hf_dir)))
    except (ValueError, KeyError) as exc:
        raise FusedLayoutError(recipe, str(exc)) from None


def _save_fused(builder: Any, weights: Any, accuracy_level: int, accuracy_level_8bit: int,
                out_model: Path, context: RecipeContext,
                refuse: Callable[[ValueError], Exception]) -> dict[str, Any]:
    """Build and save the family's fused graph, its weights placed as the graph reads them
    and each large one written out at once (``save_streamed``), then beside it its fp16 twin
    for CUDA (``export/cuda_graph.py``), which reads the weight blocks from the CPU graph's
    files. A weight that cannot be placed surfaces while building: ``refuse`` turns it into
    the recipe's error. A graph the fp16 pass cannot convert keeps its CPU graph; the
    manifest says why."""
    from export.builders import FusedOptions
    from export.cuda_graph import write_cuda_graph

    max_length = builder.shape.context_length
    options = FusedOptions(max_length=max_length, accuracy_level=accuracy_level,
                           accuracy_level_8bit=accuracy_level_8bit)
    try:
        model = save_streamed(lambda store: builder.build(weights, options, store), out_model,
                              context.external_data_bytes)
    except ValueError as exc:
        raise refuse(exc) from None
    facts: dict[str, Any] = {"layout": "fused", "max_length": builder.max_length(max_length)}
    try:
        write_cuda_graph(model, out_model)
    except ValueError as exc:
        facts["cuda_graph"] = f"not written: {exc}"
    return facts


@dataclass(frozen=True)
class FusedRecipe(Recipe):
    """The decoder rebuilt as one fused graph (``export/builders/``, models/README.md "Fused
    layout"): GroupQueryAttention writing a shared KV buffer, fused RMSNorm, ``MatMulNBits``
    for every projection and the LM head, logits of the last position only. Decode on CPU is
    bound by per-op overhead and cache copies in the plain export, which this removes at the
    same weights: every tensor of the fp32 folder, placed by the family's builder and
    quantized symmetrically per block as it is placed."""

    method: str = "fused MatMulNBits"
    #: weight bits of every projection; 32 keeps them fp32 (plain MatMul)
    bits: int = 8
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    lm_head_bits: int = 8

    @property
    def fused(self) -> bool:
        return True

    def label(self) -> str:
        if self.lm_head_bits == self.bits:
            return self.name
        head = "fp32" if self.lm_head_bits == 32 else f"{self.lm_head_bits}-bit"
        return f"{self.name} (LM head {head})"

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        from export.builders import SourceTensors
        from export.errors import FusedLayoutError

        builder = _fused_builder(self.name, context)
        try:
            weights = builder.streamed_weights(
                SourceTensors.from_safetensors(context.hf_dir),
                self._quantize(self.bits),
                self._quantize(self.lm_head_bits),
            )
        except ValueError as exc:
            raise FusedLayoutError(self.name, str(exc)) from None
        return _save_fused(builder, weights, self.accuracy_level, self.accuracy_level,
                           out_model, context, lambda exc: FusedLayoutError(self.name, str(exc)))

    def _quantize(self, bits: int) -> Any:
        from export.builders import quantize_symmetric

        if bits == 32:
            return lambda lin: lin
        return lambda lin: quantize_symmetric(lin, bits, self.block_size)


@dataclass(frozen=True)
class GgufBlocksRecipe(Recipe):
    """The GGUF file's own quantized blocks in the fused graph (``export/gguf_blocks.py``):
    4-bit types (Q4_0, Q4_1, Q4_K, Q3_K, Q2_K) stay 4-bit and 5- to 8-bit types (Q5_0, Q5_1,
    Q5_K, Q6_K, Q8_0, IQ4) become 8-bit, exactly, instead of being re-quantized, which on the
    default model costs 30 % perplexity at 4 bits. Only the types without a linear code are
    re-quantized (to 8 bits); the manifest lists how each type was carried. Only for GGUF
    sources."""

    method: str = "GGUF blocks as MatMulNBits (fused layout)"
    #: for the 4-bit blocks; 8-bit blocks always use level 4 (see FusedOptions)
    accuracy_level: int = 4

    @property
    def fused(self) -> bool:
        return True

    def label(self) -> str:
        if self.accuracy_level != 4:
            return f"{self.name} (accuracy level {self.accuracy_level})"
        return self.name

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        from export.builders import UnplacedTensorError
        from export.errors import ExportError, FusedLayoutError
        from export.gguf_blocks import carry_plan, gguf_tensors

        if not context.source_is_gguf:
            raise ExportError(
                f"The {self.name} recipe keeps a GGUF file's own blocks, but the source is not "
                "a GGUF file: use --quant int8-fused instead."
            )
        builder = _fused_builder(self.name, context)

        def refuse(exc: ValueError) -> Exception:
            if isinstance(exc, UnplacedTensorError):
                return FusedLayoutError(self.name, str(exc))
            return ExportError(f"Cannot carry the GGUF blocks over: {exc}.")

        try:
            weights = builder.streamed_weights(gguf_tensors(context.source_path, builder.shape))
        except ValueError as exc:
            raise refuse(exc) from None
        facts = _save_fused(builder, weights, self.accuracy_level, 4, out_model, context,
                            refuse)
        return {**facts, "gguf_blocks": carry_plan(context.source_path)}


RECIPES: dict[str, Recipe] = {
    "int8": WeightOnlyRecipe(
        name="int8",
        description="8-bit weight-only MatMulNBits, block 32, symmetric (near-lossless)",
        bits=8,
    ),
    "int4": WeightOnlyRecipe(
        name="int4",
        description="4-bit weight-only MatMulNBits, block 32, symmetric (smaller, lossy)",
        bits=4,
    ),
    "fp32": NoQuantization(name="fp32", description="no quantization: the fp32 export"),
    "int8-fused": FusedRecipe(
        name="int8-fused",
        description="8-bit MatMulNBits in the fused decoder graph (fast decode)",
    ),
    "fp32-fused": FusedRecipe(
        name="fp32-fused",
        description="fp32 weights in the fused decoder graph (exact, 4x the size of int8)",
        method="fused MatMul",
        bits=32,
        lm_head_bits=32,
    ),
    "q4-gguf": GgufBlocksRecipe(
        name="q4-gguf",
        description="the GGUF's own blocks in the fused decoder graph, 4-bit types as "
        "4-bit and wider ones as 8-bit (the source's exact weights, fast)",
    ),
}
#: What ``--quant`` means when not given: the fastest recipe that passes the gate.
AUTO_RECIPE = "auto"
#: The recipe for sources whose own blocks cannot be carried: near-lossless and portable.
DEFAULT_RECIPE = "int8"


@dataclass(frozen=True)
class RecipePlan:
    """The recipes an export tries, in order, until one passes the gate; ``note`` says why a
    recipe other than the one asked for is used (one line for the export output);
    ``fallback`` (the Optimum layout) follows when every fused candidate fails to build with
    a :class:`~export.errors.FusedLayoutError`."""

    candidates: tuple[Recipe, ...]
    auto: bool
    note: str | None = None
    fallback: tuple[Recipe, ...] = ()


def plan_recipes(requested: str, source_path: Path, source_is_gguf: bool,
                 config: dict[str, Any]) -> RecipePlan:
    """``auto`` tries faithful recipes from the fastest to decode (measured on CPU, see
    models/README.md) to the slowest: a GGUF file's own blocks with activations rounded to
    int8 (accuracy level 4), then computed in fp32 (level 1, ~2x slower for 4-bit); 8-bit
    weights in the fused graph, then with the LM head in fp32 (8-bit weights at level 1 run
    ~100x slower on CPU, so fp32 weights are the more precise option); finally fp32 weights.
    A family the fused graph cannot express gets the Optimum layout's int8, int8 with the LM
    head in fp32, then fp32. A named recipe is taken as asked, except that a fused recipe
    falls back to the Optimum layout for such a family, with the reason in ``note``."""
    from export.builders import NotFusableError, shape_from_config

    try:
        shape_from_config(config)
        reason = None
    except NotFusableError as exc:
        reason = str(exc)
    if requested != AUTO_RECIPE:
        recipe = RECIPES[requested]
        if not recipe.fused:
            return RecipePlan((recipe,), auto=False)
        fallback = (RECIPES["fp32" if requested == "fp32-fused" else DEFAULT_RECIPE],)
        if reason is None:
            return RecipePlan((recipe,), auto=False, fallback=fallback)
        return RecipePlan(fallback, auto=False, note=_fallback_note(reason, fallback))
    int8, q4 = RECIPES[DEFAULT_RECIPE], RECIPES["q4-gguf"]
    optimum = (int8, dataclasses.replace(int8, lm_head_bits=32), RECIPES["fp32"])
    if reason is not None:
        return RecipePlan(optimum, auto=True, note=_fallback_note(reason, optimum))
    candidates: list[Recipe] = []
    if source_is_gguf:
        from export.gguf_blocks import can_carry_blocks

        if can_carry_blocks(source_path):
            candidates += [q4, dataclasses.replace(q4, accuracy_level=1)]
    fused = RECIPES["int8-fused"]
    candidates += [fused, dataclasses.replace(fused, lm_head_bits=32), RECIPES["fp32-fused"]]
    return RecipePlan(tuple(candidates), auto=True, fallback=optimum)


def _fallback_note(reason: str, fallback: tuple[Recipe, ...]) -> str:
    """The line an export prints when it leaves the fused layout."""
    if len(fallback) == 1:
        return (f"The fused layout cannot express this model ({reason}): exporting "
                f"{fallback[0].name} in the Optimum layout instead.")
    return f"The fused layout cannot express this model ({reason}): trying the Optimum layout."
