"""The reference logits of a GGUF model too large for an fp32 copy, computed layer by layer.

The quality gate normally compares the shipped graph with the model exported in fp32, which
for a 7B model would take 28 GB of RAM (and twice that while exporting). Instead, the model is
run by transformers' own modelling code for its family, built with empty weights, and each
module gets its weights only while it runs: a pre-forward hook dequantizes its tensors from
the GGUF file with gguf-py (not with the export's block mapping), the post-forward hook drops
them again. At most one decoder layer (under 1 GB for a 7B), the embedding table or the LM
head is held at a time, and the figures mean what they mean for a small model: the shipped
graph against the source's exact weights in fp32, on the same tokens, only fewer of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from export.builders import DecoderShape, SourceTensors

#: What the manifest and the export's last line say the reference was.
METHOD = ("transformers run layer by layer on the GGUF's weights dequantized by gguf-py "
          "(no fp32 copy of the model held)")


def layerwise_logits(path: Path, config: Any, shape: DecoderShape,
                     token_ids: list[int]) -> np.ndarray:
    """transformers' logits ``[T, vocab]`` (fp32) for ``token_ids`` from the GGUF file at
    ``path``, with ``config`` (transformers' config of the file)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    from export.gguf_blocks import gguf_tensors
    from export.onnx_export import REFERENCE_ATTENTION

    source = gguf_tensors(path, shape, dense=True)
    config._attn_implementation = REFERENCE_ATTENTION
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    handles = []
    for prefix, module in _units(model):
        handles.append(module.register_forward_pre_hook(_fill(prefix, module, source)))
        handles.append(module.register_forward_hook(_empty(module)))
    try:
        with torch.inference_mode():
            ids = torch.tensor([token_ids], dtype=torch.long)
            logits = model(input_ids=ids, use_cache=False).logits[0].float().numpy()
    finally:
        for handle in handles:
            handle.remove()
    return logits


def _units(model: Any) -> list[tuple[str, Any]]:
    """The modules weights are loaded for, each as a whole: every decoder layer, and every
    other module that holds parameters itself (embedding, final norm, LM head)."""
    modules = list(model.named_modules())
    layers = [name for name, _ in modules if _is_layer(name)]
    units = [(f"{name}.", module) for name, module in modules if name in layers]
    for name, module in modules:
        inside = any(name == layer or name.startswith(f"{layer}.") for layer in layers)
        if not inside and any(True for _ in module.parameters(recurse=False)):
            units.append((f"{name}.", module))
    return units


def _is_layer(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and parts[-2] == "layers" and parts[-1].isdigit()


def _fill(prefix: str, module: Any, source: SourceTensors) -> Callable[..., None]:
    def hook(*_: Any) -> None:
        import torch

        for name, param in list(module.named_parameters()):
            value = np.asarray(source.take(prefix + name), dtype=np.float32)
            owner, attr = _owner(module, name)
            setattr(owner, attr, torch.nn.Parameter(
                torch.from_numpy(value.reshape(tuple(param.shape))), requires_grad=False))

    return hook


def _empty(module: Any) -> Callable[..., None]:
    def hook(*_: Any) -> None:
        import torch

        for name, param in list(module.named_parameters()):
            owner, attr = _owner(module, name)
            setattr(owner, attr, torch.nn.Parameter(
                torch.empty(param.shape, device="meta"), requires_grad=False))

    return hook


def _owner(module: Any, name: str) -> tuple[Any, str]:
    path, _, attr = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attr
