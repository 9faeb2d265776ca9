"""Granite 3: Llama with four multipliers. ``embedding_multiplier`` scales the embeddings,
``attention_multiplier`` is the softmax scale, ``residual_multiplier`` scales each block's
output before the residual add (folded into ``o_proj`` and ``down_proj``), and the logits
are divided by ``logits_scaling`` (folded into the LM head)."""

from __future__ import annotations

from dataclasses import replace

from export.builders.base import DecoderShape
from export.builders.llama import LlamaBuilder


class GraniteBuilder(LlamaBuilder):
    model_type = "granite"

    @classmethod
    def read_config(cls, config: dict) -> DecoderShape:
        shape = super().read_config(config)
        return replace(
            shape,
            embedding_scale=float(config.get("embedding_multiplier", 1.0)),
            attention_scale=float(config.get("attention_multiplier", 1.0)),
            residual_scale=float(config.get("residual_multiplier", 1.0)),
            logits_scale=1.0 / float(config.get("logits_scaling", 1.0)),
        )
