"""The default model on CUDA: the graph it gets, its answers against the CPU's, its quality
against fp32, and CUDA graph capture against plain steps.

Needs a working NVIDIA GPU; skipped with the reason elsewhere (run by tests/gpu/run.sh).
References: the shipped CPU graph (MatMulNBits accuracy level 4, int8 activations) and the
same graph computed exactly (level 0), which for the default model is its fp32 reference:
its weights are the GGUF's own blocks, so the exact graph is the dequantized fp32 model
(measured: logits within 1e-4 of PyTorch's). Speed is `onnxchat bench`'s business, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop.engine import Generator, SamplingSettings, load_model
from desktop.engine.model import CUDA_GRAPH_ENV, Model
from desktop.engine.runtime import SharedKVDecoder, create_session, cuda_unavailable_reason

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(cuda_unavailable_reason() is not None,
                       reason=f"no working CUDA: {cuda_unavailable_reason()}"),
]

REPO = Path(__file__).resolve().parent.parent.parent
PROMPTS = [
    "Write a short poem about the sea.",
    "Explain in a few sentences how a hash table works.",
    "What should I pack for a rainy weekend in the mountains?",
]
NEW_TOKENS = 64
TEACHER_TOKENS = 512
GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0)
#: How far two fp16 CUDA computations of the same step may differ in a logit.
FP16_NOISE = 0.25


@pytest.fixture(scope="module")
def cuda_model(cuda_default_model: Path) -> Model:
    return load_model(cuda_default_model, device="auto", cuda_graph=False)


@pytest.fixture(scope="module")
def cpu_model(cuda_default_model: Path) -> Model:
    return load_model(cuda_default_model, device="cpu", cuda_graph=False)


@pytest.fixture(scope="module")
def exact_cpu(cuda_default_model: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> SharedKVDecoder:
    """The CPU graph with MatMulNBits at accuracy level 0: the exact fp32 computation."""
    onnx = pytest.importorskip("onnx", reason="the exact fp32 reference needs the onnx package")
    model = onnx.load(str(cuda_default_model / "onnx" / "model.onnx"))
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "accuracy_level":
                attr.i = 0
    path = tmp_path_factory.mktemp("exact") / "model.onnx"
    onnx.save(model, str(path))
    session, _ = create_session(path, "cpu")
    return SharedKVDecoder(session, "cpu", 4096)


def chat_ids(model: Model, prompt: str) -> list[int]:
    return model.encode(model.template.render([{"role": "user", "content": prompt}]))


def greedy(model: Model, ids: list[int], count: int,
           generator: Generator | None = None) -> tuple[list[int], np.ndarray]:
    """``count`` greedy tokens after ``ids`` (appended to ``generator``'s cache if given, else
    from an empty one) and the logits each was chosen from."""
    generator = generator or Generator(model)
    generator.append_tokens(ids)
    rng = np.random.default_rng(0)
    tokens, rows = [], []
    for _ in range(count):
        rows.append(generator.logits.copy())
        tokens.append(generator.next_token(GREEDY, rng))
        generator.append_tokens(tokens[-1:])
    return tokens, np.stack(rows)


def teacher_forced(decoder, ids: list[int]) -> np.ndarray:
    """Last-position logits after each of ``ids``, fed one at a time from an empty cache."""
    decoder.reset()
    return np.stack([np.asarray(decoder.forward([token]), np.float32) for token in ids])


def validation_ids(model: Model) -> list[int]:
    text = (REPO / "export" / "data" / "validation.txt").read_text(encoding="utf-8")
    return model.encode(text)[:TEACHER_TOKENS]


def perplexity(logits: np.ndarray, ids: list[int]) -> float:
    rows = logits[:-1].astype(np.float64)
    peak = rows.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(rows - peak).sum(axis=-1)) + peak[:, 0]
    return float(np.exp((log_norm - rows[np.arange(len(rows)), ids[1:]]).mean()))


def test_auto_puts_the_default_model_on_the_gpu(cuda_model: Model, figures: dict) -> None:
    assert cuda_model.device.used == "cuda" and cuda_model.device.reason is None
    assert cuda_model.graph == "onnx/model_cuda.onnx"
    assert cuda_model.decoder.kv_dtype is np.float16
    figures["load_s_cuda"] = round(cuda_model.load_seconds, 3)


def test_greedy_answers_on_cuda_and_cpu(cuda_model: Model, cpu_model: Model,
                                        exact_cpu: SharedKVDecoder, figures: dict) -> None:
    """64 greedy tokens on three prompts. Where CUDA and a CPU graph part, the CPU graph's
    two candidates must be a near tie (within twice the largest logit difference measured
    teacher-forced on the same prefix), and from there on the answers are different texts."""
    results = []
    for prompt in PROMPTS:
        ids = chat_ids(cuda_model, prompt)
        cuda_tokens, cuda_rows = greedy(cuda_model, ids, NEW_TOKENS)
        row = {"prompt": prompt}
        for name, reference in (("cpu", cpu_model.decoder), ("cpu_exact", exact_cpu)):
            ref_rows = teacher_forced(reference, ids + cuda_tokens)[len(ids) - 1:-1]
            chosen = ref_rows.argmax(-1)
            parted = np.flatnonzero(chosen != np.asarray(cuda_tokens))
            first = int(parted[0]) if len(parted) else None
            row[name] = {"same_greedy": first is None, "first_difference": first,
                         "max_logit_diff": round(float(np.abs(ref_rows - cuda_rows).max()), 4)}
            if first is not None:
                gap = float(ref_rows[first, chosen[first]] - ref_rows[first, cuda_tokens[first]])
                row[name]["reference_gap_at_difference"] = round(gap, 4)
        results.append(row)
        exact = row["cpu_exact"]
        if not exact["same_greedy"]:
            assert exact["reference_gap_at_difference"] <= 2 * exact["max_logit_diff"], row
    figures["greedy"] = results


def test_teacher_forced_agreement_and_quality_gate_on_cuda(
    cuda_model: Model, cpu_model: Model, exact_cpu: SharedKVDecoder, figures: dict
) -> None:
    """The issue's targets: top-1 agreement with the CPU >= 99 % (fp16 near ties explained
    above), and against fp32 perplexity ratio <= 1.03 and top-1 >= 0.95."""
    ids = validation_ids(cuda_model)
    cuda = teacher_forced(cuda_model.decoder, ids)
    exact = teacher_forced(exact_cpu, ids)
    shipped = teacher_forced(cpu_model.decoder, ids)
    assert np.isfinite(cuda).all()
    top1 = lambda a, b: float((a.argmax(-1) == b.argmax(-1)).mean())  # noqa: E731
    ppl = {name: perplexity(rows, ids) for name, rows in
           (("cuda", cuda), ("cpu_exact", exact), ("cpu", shipped))}
    found = {
        "tokens": len(ids),
        "top1_cuda_vs_cpu_exact": round(top1(cuda, exact), 4),
        "top1_cuda_vs_cpu": round(top1(cuda, shipped), 4),
        "top1_cpu_vs_cpu_exact": round(top1(shipped, exact), 4),
        "perplexity_ratio_cuda_vs_fp32": round(ppl["cuda"] / ppl["cpu_exact"], 4),
        "perplexity_ratio_cpu_vs_fp32": round(ppl["cpu"] / ppl["cpu_exact"], 4),
        "max_logit_diff_cuda_vs_cpu_exact": round(float(np.abs(cuda - exact).max()), 4),
    }
    figures["teacher_forced"] = found
    assert found["top1_cuda_vs_cpu_exact"] >= 0.99, found
    assert found["perplexity_ratio_cuda_vs_fp32"] <= 1.03, found
    assert found["top1_cuda_vs_cpu"] >= 0.95, found


def test_cuda_graph_capture_answers_like_plain_steps(cuda_default_model: Path,
                                                     cuda_model: Model, figures: dict) -> None:
    """Two turns with the decode steps captured and replayed; the second turn's prompt runs
    uncaptured after captured steps, on the same buffers."""
    captured = load_model(cuda_default_model, device="cuda", cuda_graph=True)
    assert captured.decoder.cuda_graph and captured.decoder.static_decode
    answers, turns = [], []
    for model in (cuda_model, captured):
        generator = Generator(model)
        first, first_rows = greedy(model, chat_ids(model, PROMPTS[0]), 32, generator)
        second, second_rows = greedy(model, chat_ids(model, PROMPTS[1]), 32, generator)
        answers.append(first + second)
        turns.append((first_rows, second_rows))
    diffs = [float(np.abs(plain - replayed).max()) for plain, replayed
             in zip(*turns, strict=True)]
    figures["cuda_graph"] = {"same_greedy": answers[0] == answers[1],
                             "max_logit_diff_turn1": round(diffs[0], 4),
                             "max_logit_diff_turn2": round(diffs[1], 4)}
    # Replayed steps attend over the buffer-long cache, plain ones over the filled part: in
    # fp16 the two sum in another order (measured on an H200: 0.12 over the two turns, where
    # plain CUDA steps differ from the exact fp32 graph by 0.18), and greedy agrees.
    assert max(diffs) < FP16_NOISE
    assert answers[0] == answers[1]


def test_the_default_load_captures_decode_steps(cuda_default_model: Path, cuda_model: Model,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """What the window, the terminal chat and the server get: ``load_model`` without a
    ``cuda_graph`` argument and without ONNXCHAT_CUDA_GRAPH captures the decode steps, and
    answers greedily like plain CUDA steps."""
    monkeypatch.delenv(CUDA_GRAPH_ENV, raising=False)
    default = load_model(cuda_default_model, device="auto")
    assert default.device.used == "cuda"
    assert default.decoder.cuda_graph and default.decoder.static_decode
    ids = chat_ids(default, PROMPTS[0])
    assert greedy(default, ids, 32)[0] == greedy(cuda_model, ids, 32)[0]


def test_static_steps_without_capture_equal_plain_steps(cuda_model: Model) -> None:
    """The fixed-shape step (a buffer-long mask) gives the plain step's logits on CUDA."""
    session = cuda_model.decoder.session
    plain = SharedKVDecoder(session, "cuda", 4096, initial_capacity=64)
    static = SharedKVDecoder(session, "cuda", 4096, initial_capacity=64, static_decode=True)
    ids = chat_ids(cuda_model, PROMPTS[2])
    a, b = plain.forward(ids), static.forward(ids)
    for _ in range(80):  # past one growth of the buffers
        np.testing.assert_allclose(a, b, atol=2e-2)
        token = int(a.argmax())
        a, b = plain.forward([token]), static.forward([token])
    assert static.capacity > 64


def test_captured_steps_across_a_buffer_growth(cuda_default_model: Path,
                                               cuda_model: Model) -> None:
    """Each buffer size gets its own captured graph: steps past a growth replay the new one."""
    session, _ = create_session(cuda_default_model / "onnx" / "model_cuda.onnx", "cuda",
                                cuda_graph=True)
    captured = SharedKVDecoder(session, "cuda", 4096, initial_capacity=64, cuda_graph=True)
    plain = SharedKVDecoder(cuda_model.decoder.session, "cuda", 4096, initial_capacity=64)
    ids = chat_ids(cuda_model, PROMPTS[2])
    a, b = plain.forward(ids), captured.forward(ids)
    for _ in range(100):
        np.testing.assert_allclose(a, b, atol=5e-2)
        token = int(a.argmax())
        a, b = plain.forward([token]), captured.forward([token])
    assert captured.capacity >= 128  # grew at least once
