"""Mistral: Llama with a sliding attention window on every layer when the config sets one."""

from __future__ import annotations

from export.builders.llama import LlamaBuilder


class MistralBuilder(LlamaBuilder):
    model_type = "mistral"

    @classmethod
    def sliding_layers(cls, config: dict) -> tuple[int, ...]:
        # transformers masks every layer with ``sliding_window`` (no per-layer types).
        return tuple(range(int(config["num_hidden_layers"])))
