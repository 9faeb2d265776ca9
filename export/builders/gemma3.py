"""Gemma 3 (text): Gemma 2's layout with per-head Q/K RMSNorms (``1 + weight`` too), and a
rotary table of its own for the sliding-window layers (``rope_local_base_freq``, unscaled)
while the global layers use ``rope_theta`` with the config's rope scaling."""

from __future__ import annotations

from dataclasses import replace

from export.builders.base import DecoderShape
from export.builders.gemma2 import Gemma2Builder
from export.builders.rope import Rope
from export.builders.weights import LayerWeights, SourceTensors


class Gemma3TextBuilder(Gemma2Builder):
    model_type = "gemma3_text"

    @classmethod
    def read_config(cls, config: dict) -> DecoderShape:
        shape = super().read_config(config)
        local = Rope.from_config(config, shape.rotary.dim,
                                 theta=float(config["rope_local_base_freq"]),
                                 scaling={"rope_type": "default"})
        return replace(shape, local_rope=local)

    def layer_weights(self, source: SourceTensors, p: str) -> LayerWeights:
        layer = super().layer_weights(source, p)
        layer.q_norm = self.norm(source, p + "self_attn.q_norm.weight", self.shape.head_dim)
        layer.k_norm = self.norm(source, p + "self_attn.k_norm.weight", self.shape.head_dim)
        return layer
