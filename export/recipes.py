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


def _fused_shape(recipe: str, context: RecipeContext) -> Any:
    """The decoder shape from the fp32 folder's config, or a one-line refusal."""
    from export.errors import ExportError
    from export.files import read_json
    from export.fuse import DecoderShape

    try:
        return DecoderShape.from_config(read_json(context.hf_dir / "config.json"))
    except (ValueError, KeyError) as exc:
        raise ExportError(f"The {recipe} recipe cannot rebuild this model: {exc}.") from None


@dataclass(frozen=True)
class FusedRecipe(Recipe):
    """The decoder rebuilt as one fused graph (``export/fuse.py``, models/README.md "Fused
    layout"): GroupQueryAttention writing a shared KV buffer, fused RMSNorm, ``MatMulNBits``
    for every projection and the LM head, logits of the last position only. Decode on CPU is
    bound by per-op overhead and cache copies in the plain export, which this removes at the
    same weights (they come from the fp32 export, quantized symmetrically per block)."""

    method: str = "fused MatMulNBits"
    bits: int = 8
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        from export.fuse import (
            FusedOptions,
            build_fused_model,
            quantize_weights,
            weights_from_optimum,
        )

        shape = _fused_shape(self.name, context)
        weights = weights_from_optimum(fp32_model, shape)
        quantize_weights(weights, self.bits, self.block_size)
        options = FusedOptions(
            max_length=shape.context_length,
            accuracy_level=self.accuracy_level,
            accuracy_level_8bit=self.accuracy_level,
        )
        save_model(build_fused_model(shape, weights, options), out_model)
        return {"layout": "fused", "max_length": shape.context_length}


@dataclass(frozen=True)
class GgufBlocksRecipe(Recipe):
    """The GGUF file's own quantized blocks in the fused graph (``export/gguf_blocks.py``):
    4-bit types (Q4_0, Q4_1, Q4_K, Q3_K, Q2_K) stay 4-bit and 5- to 8-bit types (Q5_0, Q5_1,
    Q5_K, Q6_K, Q8_0, IQ4) become 8-bit, exactly, instead of being re-quantized, which on the
    default model costs 30 % perplexity at 4 bits. Only the types without a linear code are
    re-quantized (to 8 bits); the manifest lists how each type was carried. Only for GGUF
    sources."""

    method: str = "GGUF blocks as MatMulNBits (fused layout)"
    accuracy_level: int = 4

    def apply(self, fp32_model: Path, out_model: Path, context: RecipeContext) -> dict[str, Any]:
        from export.errors import ExportError
        from export.fuse import FusedOptions, build_fused_model
        from export.gguf_blocks import carry_plan, weights_from_gguf

        if not context.source_is_gguf:
            raise ExportError(
                f"The {self.name} recipe keeps a GGUF file's own blocks, but the source is not "
                "a GGUF file: use --quant int8-fused instead."
            )
        shape = _fused_shape(self.name, context)
        try:
            weights = weights_from_gguf(context.source_path, shape)
        except ValueError as exc:
            raise ExportError(f"Cannot carry the GGUF blocks over: {exc}.") from None
        options = FusedOptions(
            max_length=shape.context_length,
            accuracy_level=self.accuracy_level,
            accuracy_level_8bit=4,
        )
        save_model(build_fused_model(shape, weights, options), out_model)
        return {
            "layout": "fused",
            "max_length": shape.context_length,
            "gguf_blocks": carry_plan(context.source_path),
        }


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
        description="the GGUF's own blocks in the fused decoder graph, 4-bit types as "
        "4-bit and wider ones as 8-bit (the source's exact weights, fast)",
    ),
}
#: What ``--quant`` means when not given: the best recipe for the source (see choose_recipe).
AUTO_RECIPE = "auto"
#: The recipe for sources whose own blocks cannot be carried: near-lossless and portable.
DEFAULT_RECIPE = "int8"


def choose_recipe(requested: str, source_path: Path, source_is_gguf: bool) -> Recipe:
    """``auto`` keeps a GGUF file's own blocks in the fused graph when the fused graph builds
    its architecture (the fastest and most faithful route, measured in models/README.md); any
    other source gets the int8 weight-only recipe. A named recipe is taken as asked."""
    if requested != AUTO_RECIPE:
        return RECIPES[requested]
    if source_is_gguf:
        from export.gguf_blocks import can_carry_blocks

        if can_carry_blocks(source_path):
            return RECIPES["q4-gguf"]
    return RECIPES[DEFAULT_RECIPE]
