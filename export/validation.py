"""The quality gate: the shipped model must predict the validation text nearly as well as
the fp32 export does.

Why a gate: quantization recipes fail silently (a dynamic int8 preset tripled the default
model's perplexity while producing plausible-looking text). The gate runs both ONNX files
on ``data/validation.txt`` (English prose, Chinese and code) with onnxruntime and compares
perplexity and the top-1 next-token choice position by position. It also checks that the
fp32 ONNX export reproduces the PyTorch logits, so an export bug is caught before
quantization hides it. For a GGUF source it also holds the shipped model against llama.cpp
on the same file (:mod:`export.source_check`): the same token ids, and an NLL per byte
within a few percent. It takes seconds.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.onnx_files import forward, make_session
from export.source_check import SourceReference

VALIDATION_TEXT = Path(__file__).with_name("data") / "validation.txt"
#: What the shipped model is compared with, unless a model too large for it says otherwise.
FP32_EXPORT = "the fp32 ONNX export"


@dataclass(frozen=True)
class ValidationGate:
    """Thresholds and sizes of the gate."""

    max_perplexity_ratio: float = 1.03
    min_top1_agreement: float = 0.95
    # fp32 ONNX against PyTorch, on the first tokens: an export bug, not a rounding error.
    max_fp32_logit_diff: float = 1e-2
    max_tokens: int = 1024
    # tokens per forward pass (each pass starts with an empty cache); capped by the context
    window: int = 1024
    reference_tokens: int = 64
    # |NLL per byte ÷ the source runtime's − 1| on the same file and token ids
    max_source_nll_deviation: float = 0.05


@dataclass
class ValidationResult:
    text: str
    text_sha256: str
    tokens: int
    windows: int
    perplexity_fp32: float
    perplexity: float
    perplexity_ratio: float
    top1_agreement: float
    fp32_max_logit_diff: float | None
    gate: ValidationGate
    passed: bool
    forced: bool
    seconds: float
    # against the source runtime (GGUF: llama.cpp); None for other sources
    source: dict[str, Any] | None = None
    #: what ``perplexity_fp32`` and the top-1 agreement were measured against
    reference: str = FP32_EXPORT

    def manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data["gate"] = {
            "max_perplexity_ratio": self.gate.max_perplexity_ratio,
            "min_top1_agreement": self.gate.min_top1_agreement,
            "max_fp32_logit_diff": self.gate.max_fp32_logit_diff,
            "max_source_nll_deviation": self.gate.max_source_nll_deviation,
        }
        return data

    def failures(self) -> list[str]:
        problems = []
        if self.perplexity_ratio > self.gate.max_perplexity_ratio:
            problems.append(
                f"perplexity {self.perplexity:.2f} vs fp32 {self.perplexity_fp32:.2f} "
                f"(ratio {self.perplexity_ratio:.3f} > {self.gate.max_perplexity_ratio})"
            )
        if self.top1_agreement < self.gate.min_top1_agreement:
            problems.append(
                f"top-1 agreement {self.top1_agreement:.3f} < {self.gate.min_top1_agreement}"
            )
        if self.fp32_max_logit_diff is not None and (
            self.fp32_max_logit_diff > self.gate.max_fp32_logit_diff
        ):
            problems.append(
                f"fp32 ONNX logits differ from PyTorch by {self.fp32_max_logit_diff:.2e} "
                f"(> {self.gate.max_fp32_logit_diff:.0e})"
            )
        return problems + self._source_failures()

    def _source_failures(self) -> list[str]:
        source = self.source
        if not source or not source["ran"]:
            return []
        problems = []
        if not source["tokenizer_matches"]:
            problems.append(
                f"the tokenizer splits the text into {self.text_tokens} tokens where "
                f"{source['runtime']} makes {source['tokens']} (first difference at token "
                f"{source['first_difference']})"
            )
        deviation = abs(source["nll_ratio"] - 1)
        if deviation > self.gate.max_source_nll_deviation:
            problems.append(
                f"NLL per byte {source['nll_per_byte']:.4f} vs {source['runtime']}'s "
                f"{source['source_nll_per_byte']:.4f} on the same file (ratio "
                f"{source['nll_ratio']:.3f}, allowed ±{self.gate.max_source_nll_deviation:.0%})"
            )
        return problems

    @property
    def text_tokens(self) -> int | None:
        return None if self.source is None else self.source.get("our_tokens")

    def summary(self) -> str:
        line = (
            f"perplexity {self.perplexity:.2f} (fp32 {self.perplexity_fp32:.2f}, "
            f"ratio {self.perplexity_ratio:.3f}), top-1 agreement {self.top1_agreement:.3f} "
            f"over {self.tokens} tokens"
        )
        if self.reference != FP32_EXPORT:
            line += f" against {self.reference}"
        if self.source and self.source["ran"]:
            line += (
                f"; NLL per byte {self.source['nll_per_byte']:.4f} vs "
                f"{self.source['source_nll_per_byte']:.4f} in llama.cpp"
            )
        elif self.source:
            line += f"; not checked against llama.cpp: {self.source['reason']}"
        return line


def validation_text() -> str:
    return VALIDATION_TEXT.read_text(encoding="utf-8")


@dataclass
class _Pass:
    """Negative log-likelihood sum, prediction count and argmax ids of one model."""

    nll: float
    count: int
    top1: np.ndarray
    first_logits: np.ndarray


def _run(model: Path, windows: list[np.ndarray], reference_tokens: int) -> _Pass:
    session = make_session(model)
    passes = []
    for ids in windows:
        logits, _ = forward(session, ids)
        passes.append(_score(logits[0], ids, reference_tokens if not passes else 0))
    return _Pass(sum(p.nll for p in passes), sum(p.count for p in passes),
                 np.concatenate([p.top1 for p in passes]), passes[0].first_logits)


def _score(logits: np.ndarray, ids: np.ndarray, keep: int) -> _Pass:
    """One window's NLL of each next id and argmax ids from its logits (T, vocab); the first
    ``keep`` rows of logits are kept."""
    logits = logits.astype(np.float32, copy=False)
    shifted = logits[:-1]
    peak = shifted.max(axis=-1, keepdims=True)
    # float32 exponentials, float64 sums: exact enough and several times faster
    sums = np.exp(shifted - peak).sum(axis=-1, dtype=np.float64)
    log_norm = np.log(sums) + peak[:, 0].astype(np.float64)
    target = shifted[np.arange(len(ids) - 1), ids[1:]].astype(np.float64)
    return _Pass(float((log_norm - target).sum()), len(ids) - 1, logits.argmax(axis=-1),
                 logits[:keep].copy())


def token_windows(
    token_ids: list[int], context_length: int, gate: ValidationGate
) -> list[np.ndarray]:
    """The forward passes the gate scores: the first ``gate.max_tokens`` ids in windows of at
    most ``gate.window`` (and the context), each starting with an empty cache."""
    ids = np.asarray(token_ids[: gate.max_tokens], dtype=np.int64)
    window = max(2, min(gate.window, context_length))
    windows = [ids[i: i + window] for i in range(0, len(ids), window)]
    windows = [w for w in windows if len(w) >= 2]
    if not windows:
        raise ValueError("the validation text encodes to fewer than two tokens")
    return windows


def _source_figures(
    source: SourceReference, token_ids: list[int], fp32: _Pass, shipped: _Pass
) -> dict[str, Any]:
    figures: dict[str, Any] = {**source.manifest(), "our_tokens": len(token_ids)}
    if source.ran and source.nll is not None and source.bytes:
        figures["source_nll_per_byte"] = round(source.nll / source.bytes, 5)
        figures["nll_per_byte_fp32"] = round(fp32.nll / source.bytes, 5)
        figures["nll_per_byte"] = round(shipped.nll / source.bytes, 5)
        figures["nll_ratio"] = round(shipped.nll / source.nll, 4)
    return figures


def validate(
    fp32_model: Path,
    model: Path | None,
    token_ids: list[int],
    context_length: int,
    gate: ValidationGate,
    reference_logits: np.ndarray | None = None,
    source: SourceReference | None = None,
) -> ValidationResult:
    """Compare ``model`` with ``fp32_model`` (``model`` None: the fp32 export is shipped).

    ``reference_logits`` are PyTorch's logits for the first ``gate.reference_tokens`` ids;
    ``source`` is the source runtime's view of the same windows (:func:`token_windows`).
    """
    start = time.monotonic()
    windows = token_windows(token_ids, context_length, gate)
    reference = _run(fp32_model, windows, gate.reference_tokens)
    candidate = _run(model, windows, gate.reference_tokens) if model is not None else reference
    logit_diff = None
    if reference_logits is not None:
        n = min(len(reference_logits), len(reference.first_logits))
        logit_diff = float(np.abs(reference.first_logits[:n] - reference_logits[:n]).max())
    return _result(reference, candidate, token_ids, windows, gate, logit_diff, source, start,
                   FP32_EXPORT)


def validate_against_logits(model: Path, token_ids: list[int], ids: np.ndarray,
                            reference_logits: np.ndarray, reference: str, gate: ValidationGate,
                            source: SourceReference | None = None) -> ValidationResult:
    """The gate of a model without an fp32 export: ``model`` against ``reference_logits``
    ([T, vocab] for the one window ``ids``, the first of the text's ``token_ids``), computed
    as ``reference`` says."""
    start = time.monotonic()
    ids = np.asarray(ids, dtype=np.int64)
    candidate = _run(model, [ids], 0)
    return _result(_score(reference_logits, ids, 0), candidate, token_ids, [ids], gate,
                   None, source, start, reference)


def _result(reference: _Pass, candidate: _Pass, token_ids: list[int],
            windows: list[np.ndarray], gate: ValidationGate, logit_diff: float | None,
            source: SourceReference | None, start: float, against: str) -> ValidationResult:
    perplexity_fp32 = float(np.exp(reference.nll / reference.count))
    perplexity = float(np.exp(candidate.nll / candidate.count))
    top1 = float((reference.top1 == candidate.top1).mean())
    text = validation_text()
    result = ValidationResult(
        text=f"export/data/{VALIDATION_TEXT.name}",
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        tokens=min(len(token_ids), gate.max_tokens),
        windows=len(windows),
        perplexity_fp32=round(perplexity_fp32, 4),
        perplexity=round(perplexity, 4),
        perplexity_ratio=round(perplexity / perplexity_fp32, 4),
        top1_agreement=round(top1, 4),
        fp32_max_logit_diff=logit_diff,
        gate=gate,
        passed=False,
        forced=False,
        seconds=0.0,
        source=None if source is None else _source_figures(source, token_ids, reference,
                                                           candidate),
        reference=against,
    )
    result.passed = not result.failures()
    result.seconds = round(time.monotonic() - start, 2)
    return result


def report_markdown(name: str, recipe: dict[str, Any], result: ValidationResult) -> str:
    """validation_report.md: the gate's figures for people browsing the model folder."""
    verdict = "passed" if result.passed else (
        "FAILED (kept with --force)" if result.forced else "FAILED"
    )
    diff = (
        f"{result.fp32_max_logit_diff:.2e}" if result.fp32_max_logit_diff is not None else "–"
    )
    settings = ", ".join(f"{k} {v}" for k, v in recipe.items() if k != "description")
    lines = [
        f"# Validation of {name}",
        "",
        f"Result: **{verdict}**",
        "",
        f"Recipe: {settings}.",
        "",
        f"Text: `{result.text}` (sha256 `{result.text_sha256[:16]}…`), {result.tokens} tokens "
        f"in {result.windows} forward pass(es) with onnxruntime on CPU, {result.seconds} s.",
        "",
        "| measure | value | gate |",
        "|---|---|---|",
        f"| perplexity, {_reference_label(result)} | {result.perplexity_fp32:.3f} | |",
        f"| perplexity, shipped model | {result.perplexity:.3f} | |",
        f"| perplexity ratio | {result.perplexity_ratio:.4f} | "
        f"≤ {result.gate.max_perplexity_ratio} |",
        f"| top-1 agreement with {'fp32' if result.reference == FP32_EXPORT else 'it'} | "
        f"{result.top1_agreement:.4f} | ≥ {result.gate.min_top1_agreement} |",
        f"| max logit difference, fp32 ONNX vs PyTorch (first {result.gate.reference_tokens} "
        f"tokens) | {diff} | ≤ {result.gate.max_fp32_logit_diff:.0e} |",
        "",
    ]
    lines += _source_lines(result)
    problems = result.failures()
    if problems:
        lines += ["Failures:", "", *[f"- {p}" for p in problems], ""]
    return "\n".join(lines)


def _reference_label(result: ValidationResult) -> str:
    return "fp32 ONNX" if result.reference == FP32_EXPORT else (
        f"reference ({result.reference})")


def _source_lines(result: ValidationResult) -> list[str]:
    """The report's paragraph on the check against the source runtime."""
    source = result.source
    if source is None:
        return []
    if not source["ran"]:
        return [f"Not checked against the source runtime: {source['reason']}.", ""]
    same = "the same ids" if source["tokenizer_matches"] else (
        f"**different ids** from token {source['first_difference']}"
    )
    how = f" ({source['reason']}.)" if source.get("reason") else ""
    return [
        f"Against {source['runtime']} on the same file: its tokenizer gives {source['tokens']} "
        f"tokens for the text, ours {source['our_tokens']} ({same}).{how}",
        "",
        "| NLL per byte (same token ids) | value | gate |",
        "|---|---|---|",
        f"| {source['runtime']} | {source['source_nll_per_byte']:.4f} | |",
        f"| fp32 ONNX | {source['nll_per_byte_fp32']:.4f} | |",
        f"| shipped model | {source['nll_per_byte']:.4f} | ratio {source['nll_ratio']:.3f}, "
        f"within ±{result.gate.max_source_nll_deviation:.0%} |",
        "",
    ]
