"""Loading a source with transformers and saving it as an fp32 Hugging Face folder, which
is what Optimum exports from. GGUF files are dequantized by transformers' GGUF loader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ExportError, first_line, is_disk_full
from export.onnx_export import REFERENCE_ATTENTION
from export.sources import GgufInfo, Source, check_model_type


@dataclass
class LoadedModel:
    hf_dir: Path
    config: Any  # transformers PretrainedConfig
    tokenizer: Any | None  # transformers PreTrainedTokenizerFast; None for a GGUF (below)
    model: Any  # torch module, fp32, eval mode
    gguf: GgufInfo | None


def load_source(source: Source, gguf: GgufInfo | None, hf_dir: Path) -> LoadedModel:
    """Load config, tokenizer and fp32 weights, and save them to ``hf_dir``.

    A GGUF's tokenizer is not loaded here: it is rebuilt from the file's header as llama.cpp
    reads it (``export/gguf_tokenizer.py``), and transformers' conversion
    (:func:`converted_tokenizer`) is only for what the rebuild does not cover. Every
    transformers call on a GGUF parses its whole header again, seconds for a vocabulary of
    49,152 tokens, so the config is read once and handed to the model's loader."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if source.is_gguf:
        location: Path = source.path.parent
        kwargs: dict[str, Any] = {"gguf_file": source.path.name}
    else:
        location, kwargs = source.path, {}
    try:
        config = AutoConfig.from_pretrained(location, **kwargs)
        check_model_type(config.model_type, source.spec)
        tokenizer = None if source.is_gguf else AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(
            location, config=config, dtype=torch.float32,
            attn_implementation=REFERENCE_ATTENTION, **kwargs
        )
    except ExportError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise
        raise ExportError(f"Could not load {source.spec}: {first_line(exc)}. Check that the "
                          "model files are complete.") from exc
    model.eval()
    model.save_pretrained(hf_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(hf_dir)
    return LoadedModel(hf_dir, config, tokenizer, model, gguf)


def converted_tokenizer(source: Source, hf_dir: Path) -> Any:
    """transformers' conversion of a GGUF tokenizer the header rebuild does not cover, saved
    in ``hf_dir``."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path.parent,
                                                  gguf_file=source.path.name)
    except Exception as exc:
        if is_disk_full(exc):
            raise
        raise ExportError(
            f"Could not read the tokenizer of {source.spec}: {first_line(exc)}.") from exc
    tokenizer.save_pretrained(hf_dir)
    return tokenizer


def reference_logits(model: Any, token_ids: list[int]) -> np.ndarray:
    """PyTorch's logits for ``token_ids`` ([T, vocab], fp32), the fp32 export's yardstick."""
    import torch

    with torch.inference_mode():
        ids = torch.tensor([token_ids], dtype=torch.long)
        return model(input_ids=ids, use_cache=False).logits[0].float().numpy()
