"""A loaded model: manifest, tokenizer, chat template, ONNX session and device."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from desktop.engine.manifest import Manifest, read_manifest, verify_files
from desktop.engine.runtime import DeviceInfo, KVDecoder, SharedKVDecoder, create_session
from desktop.engine.template import ChatTemplate
from desktop.errors import ModelError

#: ONNX Runtime's CUDA GroupQueryAttention has fp16/bf16 kernels only, so the fp32 fused graph
#: would run its attention on the CPU with the shared KV buffer copied across every step.
FUSED_FP32_ON_CUDA = ("CUDA not used: this model's fused fp32 graph has no CUDA attention kernel "
                      "in ONNX Runtime (fp16 only); export it with --quant int8 for the GPU")


@dataclass
class Model:
    """Everything needed to chat with one model folder. Load with :func:`load_model`."""

    manifest: Manifest
    tokenizer: Tokenizer
    template: ChatTemplate
    decoder: KVDecoder | SharedKVDecoder
    device: DeviceInfo
    load_seconds: float

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def context_length(self) -> int:
        """Positions available: the model's own limit, or the fused layout's KV buffer bound."""
        bound = getattr(self.decoder, "max_length", None)
        return min(self.manifest.context_length, bound or self.manifest.context_length)

    @functools.cached_property
    def max_chars_per_token(self) -> int:
        """The longest token's length: no text of n characters is fewer than n / this tokens
        (byte-level tokens spell bytes, and a character is at least one byte)."""
        return max((len(token) for token in self.tokenizer.get_vocab()), default=1)

    def encode(self, text: str) -> list[int]:
        """Token ids of already-rendered prompt text (special tokens in it are recognised)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids


def _special_token_text(tokenizer: Tokenizer, token_id: object) -> str:
    if isinstance(token_id, int):
        return tokenizer.id_to_token(token_id) or ""
    return ""


def load_model(
    folder: str | Path, device: str = "auto", threads: int | None = None, verify: bool = False
) -> Model:
    """Open a model folder. Every problem becomes a :class:`ModelError` naming the file."""
    started = time.perf_counter()
    manifest = read_manifest(folder)
    if verify:
        problems = verify_files(manifest)
        if problems:
            raise ModelError(f"{problems[0]}; re-export the model")
    tokenizer_path = manifest.folder / manifest.tokenizer_file
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise ModelError(f"{tokenizer_path} is not a valid tokenizer ({exc}); re-export") from None
    template_source = None
    if manifest.chat_template_file:
        template_path = manifest.folder / manifest.chat_template_file
        try:
            template_source = template_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{template_path} cannot be read ({exc}); re-export") from None
    specials = manifest.special_tokens
    template = ChatTemplate(
        template_source,
        bos_token=_special_token_text(tokenizer, specials.get("bos_token_id")),
        eos_token=_special_token_text(tokenizer, specials.get("eos_token_id")),
    )
    layout = manifest.raw["onnx"]
    session, device_info = create_session(
        manifest.folder / manifest.onnx_file, device, threads,
        cuda_unsupported=FUSED_FP32_ON_CUDA if layout.get("past_present_share_buffer") else None)
    decoder: KVDecoder | SharedKVDecoder
    if layout.get("past_present_share_buffer"):
        decoder = SharedKVDecoder(session, device_info.used,
                                  int(layout.get("max_length") or manifest.context_length))
    else:
        decoder = KVDecoder(session, device_info.used)
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    if decoder.vocab_size is not None and vocab > decoder.vocab_size:
        raise ModelError(
            f"{tokenizer_path} has {vocab} tokens but the ONNX model predicts only "
            f"{decoder.vocab_size}; the tokenizer belongs to another model — re-export"
        )
    bad_stops = [i for i in manifest.stop_token_ids if not 0 <= i < vocab]
    if bad_stops:
        raise ModelError(f"{manifest.folder}/manifest.json: stop token id {bad_stops[0]} "
                         f"is outside the vocabulary ({vocab}); re-export")
    return Model(manifest, tokenizer, template, decoder, device_info,
                 time.perf_counter() - started)
