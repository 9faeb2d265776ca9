"""Llama 2 and 3 (with Llama 3.1's rope scaling) and SmolLM: the base layout unchanged."""

from __future__ import annotations

from export.builders.base import DecoderBuilder


class LlamaBuilder(DecoderBuilder):
    """Pre-norm RMSNorm, rotary GQA (any rope type of ``rope.py``), SiLU-gated MLP; the
    optional ``attention_bias`` / ``mlp_bias`` tensors are placed like any other bias."""

    model_type = "llama"
