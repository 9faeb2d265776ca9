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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.graph_prep import prepare_for_weight_only
from export.onnx_files import link_or_copy_model, save_model


@dataclass(frozen=True)
class RecipeContext:
    """What a recipe may need beyond the fp32 graph: the original source and the fp32
    Hugging Face folder (a GGUF-block recipe reads the quantized blocks from the source)."""

    source_path: Path
    source_is_gguf: bool
    hf_dir: Path


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
    included); activations stay fp32. 8 bits, block 32, symmetric is near-lossless on the
    default model (perplexity +1.9 %)."""

    method: str = "MatMulNBits"
    bits: int = 8
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4

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
        quantizer = MatMulNBitsQuantizer(model, algo_config=config)
        quantizer.process()
        quantized = quantizer.model.model
        save_model(quantized, out_model)
        count = sum(1 for node in quantized.graph.node if node.op_type == "MatMulNBits")
        return {"quantized_matmuls": count, **rewrites}


def _fused_builder(recipe: str, context: RecipeContext) -> Any:
    """The family's fused builder for the fp32 folder's config, or a one-line refusal."""
    from export.builders import builder_for, load_config, shape_from_config
    from export.errors import ExportError

    try:
        return builder_for(shape_from_config(load_config(context.hf_dir)))
    except (ValueError, KeyError) as exc:
        raise ExportError(f"The {recipe} recipe cannot rebuild this model: {exc}.") from None


def _save_fused(builder: Any, weights: Any, accuracy_level: int, accuracy_level_8bit: int,
                out_model: Path) -> dict[str, Any]:
    from export.builders import FusedOptions

    context = builder.shape.context_length
    options = FusedOptions(max_length=context, accuracy_level=accuracy_level,
                           accuracy_level_8bit=accuracy_level_8bit)
    save_model(builder.build(weights, options), out_model)
    return {"layout": "fused", "max_length": builder.max_length(context)}


@dataclass(frozen=True)
class FusedRecipe(Recipe):
    """The decoder rebuilt as one fused graph (``export/builders/``, models/README.md "Fused
    layout"): GroupQueryAttention writing a shared KV buffer, fused RMSNorm, ``MatMulNBits``
    for every projection and the LM head, logits of the last position only. Decode on CPU is
    bound by per-op overhead and cache copies in the plain export, which this removes at the
    same weights: every tensor of the fp32 folder, placed by the family's builder and
    quantized symmetrically per block as it is placed."""

    method: str = "fused MatMulNBits"
    bits: int = 8
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        from export.builders import SourceTensors, quantize_symmetric
        from export.errors import ExportError

        builder = _fused_builder(self.name, context)
        try:
            weights = builder.weights_from(
                SourceTensors.from_safetensors(context.hf_dir),
                lambda lin: quantize_symmetric(lin, self.bits, self.block_size),
            )
        except ValueError as exc:
            raise ExportError(f"The {self.name} recipe cannot rebuild this model: {exc}.") from None
        return _save_fused(builder, weights, self.accuracy_level, self.accuracy_level,
                           out_model)


@dataclass(frozen=True)
class GgufBlocksRecipe(Recipe):
    """The GGUF file's own quantized blocks in the fused graph (``export/gguf_blocks.py``):
    Q4_0/Q4_1/Q8_0 weights are kept bit for bit instead of being re-quantized, which on the
    default model costs 30 % perplexity at 4 bits. Only for GGUF sources."""

    method: str = "GGUF blocks as MatMulNBits (fused layout)"
    accuracy_level: int = 4

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        from export.errors import ExportError
        from export.gguf_blocks import weights_from_gguf

        if not context.source_is_gguf:
            raise ExportError(
                f"The {self.name} recipe keeps a GGUF file's own blocks, but the source is not "
                "a GGUF file: use --quant int8-fused instead."
            )
        builder = _fused_builder(self.name, context)
        try:
            weights = weights_from_gguf(context.source_path, builder.shape)
        except ValueError as exc:
            raise ExportError(f"Cannot carry the GGUF blocks over: {exc}.") from None
        return _save_fused(builder, weights, self.accuracy_level, 4, out_model)


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
    "q4-gguf": GgufBlocksRecipe(
        name="q4-gguf",
        description="the GGUF's own 4-bit blocks in the fused decoder graph "
        "(the source's exact weights, fast)",
    ),
}
#: What ``--quant`` means when not given: the best recipe for the source (see choose_recipe).
AUTO_RECIPE = "auto"
#: The recipe for sources whose own blocks cannot be carried: near-lossless and portable.
DEFAULT_RECIPE = "int8"


def choose_recipe(requested: str, source_path: Path, source_is_gguf: bool) -> Recipe:
    """``auto`` keeps a GGUF file's own 4-bit blocks in the fused graph when every tensor maps
    exactly (the fastest and most faithful route, measured in models/README.md); any other
    source gets the int8 weight-only recipe. A named recipe is taken as asked."""
    if requested != AUTO_RECIPE:
        return RECIPES[requested]
    if source_is_gguf:
        from export.gguf_blocks import can_carry_blocks

        if can_carry_blocks(source_path):
            return RECIPES["q4-gguf"]
    return RECIPES[DEFAULT_RECIPE]
