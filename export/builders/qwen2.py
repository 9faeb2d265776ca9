"""Qwen 2 and 2.5: Llama with biases on the Q, K and V projections (placed with the packed
QKV projection, never dropped) and optional sliding-window layers from ``layer_types``."""

from __future__ import annotations

from export.builders.llama import LlamaBuilder


class Qwen2Builder(LlamaBuilder):
    model_type = "qwen2"
