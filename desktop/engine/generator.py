"""The small generator API every front end drives: append tokens, next token, rewind.

Modelled on onnxruntime-genai's generator. The window, the terminal chat, the benchmark and the
tests all run this one loop, so there is one place where tokens are fed and chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from desktop.engine.model import Model
from desktop.engine.sampler import select_token
from desktop.engine.settings import SamplingSettings


class Generator:
    """Holds the tokens in the KV cache and the logits for the next position.

    The model's decoder holds one cache, so the newest generator of a model owns it: creating
    one starts from an empty cache.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.tokens: list[int] = []
        self._logits: np.ndarray | None = None
        model.decoder.reset()

    def append_tokens(self, ids: Sequence[int], run_options: ort.RunOptions | None = None
                      ) -> None:
        """Run the model over ``ids`` after the cached tokens (prefill, or one decode step);
        ``run_options.terminate``, set from another thread, stops a long prompt part-way (the
        run raises, and the cached tokens are as they were)."""
        if not ids:
            return
        if len(self.tokens) + len(ids) > self.model.context_length:
            raise ValueError("the model's context is full")
        self._logits = self.model.decoder.forward(list(ids), run_options)
        self.tokens.extend(int(i) for i in ids)

    @property
    def logits(self) -> np.ndarray:
        if self._logits is None:
            raise RuntimeError("append tokens before asking for the next one")
        return self._logits

    def next_token(
        self, settings: SamplingSettings, rng: np.random.Generator, recent: Sequence[int] = ()
    ) -> int:
        """Choose the next token from the current logits (it is not fed back yet)."""
        return select_token(self.logits, settings, rng, recent)

    def is_stop(self, token_id: int) -> bool:
        return token_id in self.model.manifest.stop_token_ids

    def rewind_to(self, length: int) -> None:
        """Drop cached tokens after ``length`` so a new prompt can reuse the shared prefix."""
        length = max(0, min(length, len(self.tokens)))
        self.model.decoder.rewind(length)
        del self.tokens[length:]
        self._logits = None

    def common_prefix(self, ids: Sequence[int]) -> int:
        """How many leading ``ids`` are already in the cache."""
        n = 0
        for cached, new in zip(self.tokens, ids, strict=False):
            if cached != new:
                break
            n += 1
        return n
