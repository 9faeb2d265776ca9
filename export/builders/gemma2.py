"""Gemma 2: RMSNorm multiplies by ``1 + weight``; embeddings are scaled by sqrt(hidden);
attention uses ``query_pre_attn_scalar``'s scale and tanh soft-capping, the logits too;
every other layer attends within a sliding window (``layer_types``); attention and MLP each
have a pre-norm and a post-norm (applied to their output before the residual add); the MLP
is gated by tanh-approximated GELU."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from export.builders.base import DecoderShape
from export.builders.llama import LlamaBuilder
from export.builders.weights import LayerWeights, SourceTensors


class Gemma2Builder(LlamaBuilder):
    model_type = "gemma2"
    norm_offset = 1.0
    hidden_acts = frozenset({"gelu_pytorch_tanh"})

    @classmethod
    def activation_name(cls, config: dict) -> str:
        return str(config.get("hidden_activation") or config.get("hidden_act"))

    @classmethod
    def read_config(cls, config: dict) -> DecoderShape:
        shape = super().read_config(config)
        return replace(
            shape,
            attention_scale=float(config["query_pre_attn_scalar"]) ** -0.5,
            attn_softcap=float(config.get("attn_logit_softcapping") or 0.0),
            final_softcap=float(config.get("final_logit_softcapping") or 0.0),
            # transformers rounds sqrt(hidden) to the activations' dtype before multiplying
            embedding_scale=float(np.float32(math.sqrt(shape.hidden_size))),
        )

    def layer_weights(self, source: SourceTensors, p: str) -> LayerWeights:
        s = self.shape
        h = s.hidden_size
        return LayerWeights(
            attn_norm=self.norm(source, p + "input_layernorm.weight", h),
            qkv=self.qkv(source, p),
            o_proj=self.linear(source, p + "self_attn.o_proj", s.num_heads * s.head_dim, h),
            post_attn_norm=self.norm(source, p + "post_attention_layernorm.weight", h),
            mlp_norm=self.norm(source, p + "pre_feedforward_layernorm.weight", h),
            post_mlp_norm=self.norm(source, p + "post_feedforward_layernorm.weight", h),
            **self.mlp_weights(source, p),
        )
