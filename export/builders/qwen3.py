"""Qwen 3: Qwen 2 without the QKV biases, plus an RMSNorm over each head of Q and K
(``q_norm``/``k_norm``, weights of ``head_dim``) before the rotary embedding."""

from __future__ import annotations

from export.builders.qwen2 import Qwen2Builder
from export.builders.weights import LayerWeights, SourceTensors


class Qwen3Builder(Qwen2Builder):
    model_type = "qwen3"

    def layer_weights(self, source: SourceTensors, p: str) -> LayerWeights:
        layer = super().layer_weights(source, p)
        layer.q_norm = self.norm(source, p + "self_attn.q_norm.weight", self.shape.head_dim)
        layer.k_norm = self.norm(source, p + "self_attn.k_norm.weight", self.shape.head_dim)
        return layer
