"""Fused decoder graphs, one builder per model family.

``base.py`` builds the Llama layout; each family file overrides only what differs, so the
table below can be checked against transformers' modeling files. ``shape_from_config`` reads
a config (or says in one clause why the fused layout cannot express the model),
``weights_from_folder`` places a Hugging Face folder's tensors, ``build_fused_model`` returns
the ``onnx.ModelProto``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import onnx

from export.builders.base import (
    LAYOUT_KEY,
    MAX_LENGTH_KEY,
    SHARE_BUFFER_KEY,
    DecoderBuilder,
    DecoderShape,
    FusedOptions,
    NotFusableError,
    Transform,
)
from export.builders.gemma2 import Gemma2Builder
from export.builders.gemma3 import Gemma3TextBuilder
from export.builders.granite import GraniteBuilder
from export.builders.llama import LlamaBuilder
from export.builders.mistral import MistralBuilder
from export.builders.olmo2 import Olmo2Builder
from export.builders.phi3 import Phi3Builder
from export.builders.qwen2 import Qwen2Builder
from export.builders.qwen3 import Qwen3Builder
from export.builders.weights import (
    BlockLinear,
    DecoderWeights,
    DenseLinear,
    LayerWeights,
    Linear,
    SourceTensors,
    Tensor,
    UnplacedTensorError,
    concat_outputs,
    pack_codes,
    quantize_symmetric,
    split_outputs,
)

BUILDERS: dict[str, type[DecoderBuilder]] = {
    builder.model_type: builder
    for builder in (
        LlamaBuilder,
        MistralBuilder,
        Qwen2Builder,
        Qwen3Builder,
        Phi3Builder,
        Gemma2Builder,
        Gemma3TextBuilder,
        GraniteBuilder,
        Olmo2Builder,
    )
}
FUSABLE_MODEL_TYPES = frozenset(BUILDERS)

#: Why the families people also export are left in the Optimum layout.
NOT_FUSABLE = {
    "gpt2": "GPT-2 has learned absolute positions and LayerNorm with biases",
    "gpt_neox": "GPT-NeoX runs attention and MLP in parallel with LayerNorm and partial rotary",
    "falcon": "Falcon runs attention and MLP in parallel with LayerNorm",
    "opt": "OPT has learned absolute positions and LayerNorm with biases",
    "stablelm": "StableLM uses LayerNorm with biases",
    "phi": "Phi-1/2 run attention and MLP in parallel with LayerNorm",
    "gemma": "Gemma 1 has no fused builder yet",
    "smollm3": "SmolLM3 skips the rotary embedding on some layers",
}


def builder_class(model_type: str | None) -> type[DecoderBuilder]:
    if model_type in BUILDERS:
        return BUILDERS[model_type]
    reason = NOT_FUSABLE.get(str(model_type))
    raise NotFusableError(
        reason or f"the fused layout has no builder for {model_type!r} models "
        f"(it builds {', '.join(sorted(BUILDERS))})"
    )


def shape_from_config(config: Mapping) -> DecoderShape:
    """The family's reading of a config dict (transformers' ``to_dict()``)."""
    return builder_class(config.get("model_type")).read_config(dict(config))


def builder_for(shape: DecoderShape) -> DecoderBuilder:
    return builder_class(shape.model_type)(shape)


def weights_from_folder(folder: Path, shape: DecoderShape,
                        transform: Transform | None = None) -> DecoderWeights:
    """Every tensor of a Hugging Face folder's safetensors, placed by the family's builder."""
    return builder_for(shape).weights_from(SourceTensors.from_safetensors(folder), transform)


def build_fused_model(shape: DecoderShape, weights: DecoderWeights,
                      options: FusedOptions) -> onnx.ModelProto:
    return builder_for(shape).build(weights, options)


def load_config(folder: Path) -> dict:
    """A folder's config as transformers reads it, every default filled in (``layer_types``,
    Gemma's ``query_pre_attn_scalar`` …), so the builders see what the model runs with."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder).to_dict()


__all__ = [
    "BUILDERS",
    "FUSABLE_MODEL_TYPES",
    "LAYOUT_KEY",
    "MAX_LENGTH_KEY",
    "NOT_FUSABLE",
    "SHARE_BUFFER_KEY",
    "BlockLinear",
    "DecoderBuilder",
    "DecoderShape",
    "DecoderWeights",
    "DenseLinear",
    "FusedOptions",
    "LayerWeights",
    "Linear",
    "NotFusableError",
    "SourceTensors",
    "Tensor",
    "UnplacedTensorError",
    "build_fused_model",
    "builder_for",
    "concat_outputs",
    "load_config",
    "pack_codes",
    "quantize_symmetric",
    "shape_from_config",
    "split_outputs",
    "weights_from_folder",
]
