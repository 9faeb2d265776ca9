"""OLMo 2: no pre-norms; attention and MLP outputs are RMS-normed before the residual add
(``post_attention_layernorm``, ``post_feedforward_layernorm``), and Q and K are RMS-normed
over their whole projection width (not per head) before the rotary embedding."""

from __future__ import annotations

import numpy as np

from export.builders.graph import GraphBuilder
from export.builders.llama import LlamaBuilder
from export.builders.weights import LayerWeights, SourceTensors


class Olmo2Builder(LlamaBuilder):
    model_type = "olmo2"

    def layer_weights(self, source: SourceTensors, p: str) -> LayerWeights:
        s = self.shape
        h = s.hidden_size
        return LayerWeights(
            qkv=self.qkv(source, p),
            q_norm=self.norm(source, p + "self_attn.q_norm.weight", s.num_heads * s.head_dim),
            k_norm=self.norm(source, p + "self_attn.k_norm.weight",
                             s.num_kv_heads * s.head_dim),
            o_proj=self.linear(source, p + "self_attn.o_proj", s.num_heads * s.head_dim, h),
            post_attn_norm=self.norm(source, p + "post_attention_layernorm.weight", h),
            post_mlp_norm=self.norm(source, p + "post_feedforward_layernorm.weight", h),
            **self.mlp_weights(source, p),
        )

    def qk_norm(self, g: GraphBuilder, x: str, weight: np.ndarray | None, heads: int,
                name: str) -> str:
        assert weight is not None
        return g.rms_norm(x, weight, name, self.shape.rms_norm_eps, self.qk_norm_name(name))
