"""Chat turns on top of the generator: prompt rendering, context budget, KV-prefix reuse,
streaming text, stop strings, cancellation and per-reply statistics.

Raw text completion (no chat template, for the local server's ``/v1/completions``) goes through
the same loop: only the prompt is planned differently.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from desktop.engine.context import ContextPlan, Message, plan_context, plan_prompt
from desktop.engine.detok import StreamingDetokenizer
from desktop.engine.generator import Generator
from desktop.engine.model import Model
from desktop.engine.prompt_tokens import PromptTokens
from desktop.engine.settings import SamplingSettings
from desktop.text import clean_text

STOP_EOS, STOP_STRING, STOP_LENGTH, STOP_CANCELLED, STOP_ERROR = (
    "eos", "stop_string", "length", "cancelled", "error")


@dataclass
class ReplyStats:
    """Figures for one reply; stored with it so it can be reproduced and compared."""

    model: str
    device: str
    seed: int
    settings: dict[str, Any]
    prompt_tokens: int
    reused_prompt_tokens: int = 0
    new_tokens: int = 0
    time_to_first_token_s: float = 0.0
    prefill_tokens_per_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    total_s: float = 0.0
    stop_reason: str = ""
    dropped_messages: list[int] = field(default_factory=list)
    context_length: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReplyStream:
    """One reply in progress. Iterate for text pieces; :meth:`cancel` from any thread.

    The context plan is computed when the stream is created, so an overflow error is raised
    before anything is generated and :attr:`plan` tells what was dropped.
    """

    def __init__(self, engine: ChatEngine, plan: ContextPlan, settings: SamplingSettings) -> None:
        self._engine = engine
        self.plan = plan
        self.settings = settings
        self.seed = settings.seed if settings.seed is not None else secrets.randbits(63)
        self._cancel = threading.Event()
        #: The prompt's run while it runs: cancelling stops it part-way.
        self._prompt_run = ort.RunOptions()
        self.text = ""
        self.stats = ReplyStats(
            model=engine.model.name,
            device=engine.model.device.used,
            seed=self.seed,
            settings=settings.to_dict() | {"seed": self.seed},
            prompt_tokens=len(plan.prompt_ids),
            dropped_messages=list(plan.dropped),
            context_length=plan.context_length,
        )

    @property
    def model(self) -> Model:
        """The model that writes this reply."""
        return self._engine.model

    def cancel(self) -> None:
        """Stop after the current token, or part-way through reading the prompt. Safe to call
        from another thread, any number of times."""
        self._cancel.set()
        self._prompt_run.terminate = True

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[str]:
        return self._engine._run(self)


class ChatEngine:
    """Drives one model through a conversation, reusing the KV cache between turns."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.generator = Generator(model)
        self._lock = threading.Lock()
        self._prompt_tokens = PromptTokens(model.tokenizer)

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        return self.model.template.render(messages, add_generation_prompt=add_generation_prompt)

    def plan(self, messages: Sequence[Message], reserve: int) -> ContextPlan:
        """What the model would see for ``messages`` with ``reserve`` tokens kept for the reply.
        A special token's text written in a message stays text (desktop/engine/prompt_tokens.py)."""
        marks = self._prompt_tokens
        return plan_context(messages, lambda kept: self.render(marks.mark(kept)), marks.encode,
                            self.model.context_length, reserve, self.model.max_chars_per_token)

    def reply(self, messages: Sequence[Message], settings: SamplingSettings) -> ReplyStream:
        """Prepare the reply to ``messages`` (the last one is the user's)."""
        settings = settings.validated()
        messages = [{**m, "content": clean_text(m.get("content", ""))} for m in messages]
        plan = self.plan(messages, settings.max_new_tokens)
        return ReplyStream(self, plan, settings)

    def complete(self, prompt: str, settings: SamplingSettings) -> ReplyStream:
        """Prepare a continuation of ``prompt`` taken as raw text: no chat template, nothing
        added (special tokens written in it are still recognised). Same loop, stop strings,
        cancellation and statistics as :meth:`reply`."""
        settings = settings.validated()
        plan = plan_prompt(clean_text(prompt), self.model.encode, self.model.context_length,
                           settings.max_new_tokens, self.model.max_chars_per_token)
        return ReplyStream(self, plan, settings)

    def reset(self) -> None:
        """Forget the cached conversation (the next turn prefills from scratch)."""
        with self._lock:
            self.generator.rewind_to(0)

    def _run(self, stream: ReplyStream) -> Iterator[str]:
        with self._lock:
            yield from self._generate(stream)

    def _generate(self, stream: ReplyStream) -> Iterator[str]:
        gen, settings, stats = self.generator, stream.settings, stream.stats
        prompt = stream.plan.prompt_ids
        started = time.perf_counter()
        # Reuse the cached prefix, but run at least the last two prompt tokens: a one-token
        # step takes the decoder's single-row kernels (quantized activations in MatMulNBits),
        # whose logits differ from a multi-token prefill's, so a seed would reproduce its text
        # only when the cache happened to hold the same prefix.
        reused = min(gen.common_prefix(prompt), max(len(prompt) - 2, 0))
        gen.rewind_to(reused)
        stats.reused_prompt_tokens = reused
        rng = np.random.default_rng(stream.seed)
        detok = StreamingDetokenizer(self.model.tokenizer)
        stops = StopStringFilter(settings.stop_strings)
        limit = min(settings.max_new_tokens, stream.plan.max_new_tokens)
        window = settings.repetition_window
        generated: list[int] = []
        first_token_at = None
        try:
            if stream.cancelled:
                stats.stop_reason = STOP_CANCELLED
                return
            try:
                gen.append_tokens(prompt[reused:], stream._prompt_run)
            except Exception:
                if not stream.cancelled:
                    raise
                # stopped part-way by cancel(): the cached tokens are as they were
                stats.stop_reason = STOP_CANCELLED
                gen.rewind_to(reused)
                return
            prefill_done = time.perf_counter()
            stats.prefill_tokens_per_s = (len(prompt) - reused) / max(prefill_done - started, 1e-9)
            while True:
                if stream.cancelled:
                    stats.stop_reason = STOP_CANCELLED
                    break
                recent = gen.tokens[-window:] if window else ()
                token = gen.next_token(settings, rng, recent)
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                    stats.time_to_first_token_s = first_token_at - started
                if gen.is_stop(token):
                    stats.stop_reason = STOP_EOS
                    break
                generated.append(token)
                stats.new_tokens = len(generated)
                piece, hit = stops.feed(detok.push(token))
                if piece:
                    stream.text += piece
                    yield piece
                if hit:
                    stats.stop_reason = STOP_STRING
                    break
                if len(generated) >= limit:
                    stats.stop_reason = STOP_LENGTH
                    break
                gen.append_tokens([token])
            if stats.stop_reason != STOP_STRING:
                piece, _ = stops.feed(detok.flush())
                piece += stops.flush()
                if piece:
                    stream.text += piece
                    yield piece
        except GeneratorExit:
            stats.stop_reason = stats.stop_reason or STOP_CANCELLED
            raise
        except Exception:
            stats.stop_reason = STOP_ERROR
            gen.rewind_to(0)  # the cache may be half-updated; start clean next turn
            raise
        finally:
            ended = time.perf_counter()
            stats.new_tokens = len(generated)
            stats.total_s = ended - started
            if first_token_at is not None and len(generated) > 1:
                stats.decode_tokens_per_s = (len(generated) - 1) / max(ended - first_token_at,
                                                                       1e-9)


class StopStringFilter:
    """Holds back text that might be the start of a stop string; cuts at a full match."""

    def __init__(self, stop_strings: Sequence[str]) -> None:
        self._stops = [s for s in stop_strings if s]
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to show, whether a stop string was hit)."""
        if not self._stops:
            return text, False
        self._pending += text
        cut = min((i for s in self._stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out, self._pending = self._pending[:cut], ""
            return out, True
        hold = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(self._pending)), 0, -1):
                if self._pending.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        out = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(out):]
        return out, False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
