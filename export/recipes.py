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
}
DEFAULT_RECIPE = "int8"
