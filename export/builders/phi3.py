"""Phi-3 and Phi-4-mini: Mistral's layout with Q/K/V stored as one ``qkv_proj`` and the MLP's
gate and up as one ``gate_up_proj`` (gate first), partial rotary (``partial_rotary_factor``)
and LongRoPE (``su``) scaling, whose short factors hold up to the original context length."""

from __future__ import annotations

from export.builders.mistral import MistralBuilder
from export.builders.weights import Linear, SourceTensors, split_outputs


class Phi3Builder(MistralBuilder):
    model_type = "phi3"

    def qkv(self, source: SourceTensors, p: str) -> Linear:
        s = self.shape
        out = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim
        return self.linear(source, p + "self_attn.qkv_proj", s.hidden_size, out)

    def mlp_weights(self, source: SourceTensors, p: str) -> dict[str, Linear]:
        s = self.shape
        h, inter = s.hidden_size, s.intermediate_size
        gate, up = split_outputs(self.linear(source, p + "mlp.gate_up_proj", h, 2 * inter),
                                 [inter, inter])
        return {
            "gate_proj": gate,
            "up_proj": up,
            "down_proj": self.linear(source, p + "mlp.down_proj", inter, h),
        }
