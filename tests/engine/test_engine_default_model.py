"""The engine on the real default model: answers, streams Chinese cleanly, reproduces seeds,
reuses the KV prefix exactly, cancels within a step, and reports dropped turns."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from desktop.engine import ChatEngine, Generator, SamplingSettings, load_model
from desktop.errors import ContextOverflowError

GREEDY = SamplingSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=24)
BRIEF_PROMPT = "你好，我是人工智能助手。请问你有什么需要帮助的吗？"


@pytest.fixture(scope="module")
def engine(default_model):
    return ChatEngine(load_model(default_model, device="cpu", threads=2))


def ask(engine, text, settings=GREEDY, history=()):
    stream = engine.reply([*history, {"role": "user", "content": text}], settings)
    pieces = list(stream)
    return stream, pieces


def test_the_brief_prompt_streams_without_broken_characters(engine):
    """Streaming breaks no character: the pieces are the reply's token ids decoded at once.
    (Whether the model's own greedy bytes form valid UTF-8 is the model's affair: this one's,
    like llama.cpp's on the same GGUF, wanders off after "我是一个高级".)"""
    engine.reset()
    stream, pieces = ask(engine, BRIEF_PROMPT, GREEDY.with_changes(max_new_tokens=48))
    assert stream.text.strip()
    assert "".join(pieces) == stream.text
    assert stream.stats.new_tokens > 0
    model = engine.model
    generator = Generator(model)
    generator.append_tokens(stream.plan.prompt_ids)
    ids: list[int] = []
    while len(ids) < stream.stats.new_tokens:
        token = int(generator.logits.argmax())
        assert not generator.is_stop(token)
        ids.append(token)
        generator.append_tokens([token])
    engine.reset()  # the generator above took the model's cache
    assert stream.text == model.tokenizer.decode(ids)


def test_seeded_sampling_is_reproducible_and_seeds_differ(engine):
    sampled = SamplingSettings(temperature=1.0, top_k=100, top_p=1.0, min_p=0.0,
                               max_new_tokens=24)
    first = ask(engine, "Tell me a story.", sampled.with_changes(seed=7))[0].text
    engine.reset()
    again = ask(engine, "Tell me a story.", sampled.with_changes(seed=7))[0].text
    engine.reset()
    other = ask(engine, "Tell me a story.", sampled.with_changes(seed=8))[0].text
    assert first == again
    assert first != other


def test_a_seed_reproduces_its_text_whatever_the_cache_holds(engine):
    """The local server answers requests in any order: the cache then holds the same prompt,
    another one, or nothing, and a seed must give the same text every time."""
    sampled = SamplingSettings(temperature=1.0, top_k=100, top_p=1.0, min_p=0.0,
                               max_new_tokens=12, seed=11)
    engine.reset()
    fresh = ask(engine, "Tell me a story.", sampled)[0].text
    same_prompt_cached = ask(engine, "Tell me a story.", sampled)[0].text
    ask(engine, "Something else.", sampled)
    other_prompt_cached = ask(engine, "Tell me a story.", sampled)[0].text
    assert fresh == same_prompt_cached == other_prompt_cached


def test_raw_completion_runs_the_same_loop(engine):
    stream = engine.complete("1, 2, 3, 4,", GREEDY.with_changes(max_new_tokens=8))
    pieces = list(stream)
    assert stream.text.startswith(" 5, 6")
    assert "".join(pieces) == stream.text
    assert stream.stats.prompt_tokens == len(engine.model.encode("1, 2, 3, 4,"))
    assert stream.plan.messages == [] and stream.stats.stop_reason == "length"
    stopped = engine.complete("1, 2, 3, 4,", GREEDY.with_changes(max_new_tokens=8,
                                                                stop_strings=(" 6",)))
    assert "".join(stopped) == " 5,"
    assert stopped.stats.stop_reason == "stop_string"
    with pytest.raises(ContextOverflowError, match="the prompt is"):
        engine.complete("word " * 10_000, GREEDY)


def test_a_reply_without_a_seed_records_the_seed_that_reproduces_it(engine):
    settings = SamplingSettings(temperature=0.9, max_new_tokens=16)
    stream, _ = ask(engine, "Name a colour.", settings)
    engine.reset()
    replay, _ = ask(engine, "Name a colour.", settings.with_changes(seed=stream.seed))
    assert replay.text == stream.text


def test_follow_up_turn_reuses_the_cached_prefix_with_identical_output(engine):
    engine.reset()
    first, _ = ask(engine, "What is 2 + 2?")
    history = [{"role": "user", "content": "What is 2 + 2?"},
               {"role": "assistant", "content": first.text}]
    reused, _ = ask(engine, "And 3 + 3?", history=history)
    assert reused.stats.reused_prompt_tokens > first.stats.prompt_tokens // 2
    engine.reset()
    fresh, _ = ask(engine, "And 3 + 3?", history=history)
    assert fresh.stats.reused_prompt_tokens == 0
    assert fresh.text == reused.text


def test_cancel_from_another_thread_stops_within_one_step(engine):
    stream = engine.reply([{"role": "user", "content": "Write a long essay about rivers."}],
                          SamplingSettings(temperature=0.0, max_new_tokens=400))
    canceller = threading.Thread(target=stream.cancel)
    for i, _ in enumerate(stream):
        if i == 5:
            tokens_at_cancel = stream.stats.new_tokens
            canceller.start()
            canceller.join()
    assert stream.stats.stop_reason == "cancelled"
    assert stream.stats.new_tokens <= tokens_at_cancel + 1
    assert stream.text  # what was generated so far is kept


def test_cancel_stops_a_prompt_part_way_and_keeps_the_cache_sound(engine, monkeypatch):
    """A long prompt is one ONNX Runtime run (seconds on a CPU): cancelling stops that run,
    not only the tokens after it (a client that left, or Stop, no longer waits for it). Here
    the cancel comes as the prompt's run starts, so the run is stopped whatever the speed."""
    engine.reset()
    decoder = engine.model.decoder
    real_forward = decoder.forward
    raised: list[BaseException] = []
    stream = engine.reply([{"role": "user", "content": "Tell me about the sea. " * 200}],
                          GREEDY)

    def forward(ids, run_options=None):
        if len(ids) > 1:
            stream.cancel()  # from another thread in use; the flag is what matters
        try:
            return real_forward(ids, run_options)
        except Exception as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(decoder, "forward", forward)
    assert list(stream) == [] and stream.stats.stop_reason == "cancelled"
    assert len(raised) == 1 and stream.stats.new_tokens == 0  # ONNX Runtime stopped the run
    assert engine.generator.tokens == [] and decoder.length == 0
    monkeypatch.undo()
    again = ask(engine, "What is the capital of France?")[0]
    engine.reset()
    fresh = ask(engine, "What is the capital of France?")[0]
    assert again.text == fresh.text and again.stats.stop_reason in ("eos", "length")


def test_context_overflow_drops_oldest_turns_and_reports_them(default_model):
    model = load_model(default_model, device="cpu", threads=2)
    object.__setattr__(model.manifest, "context_length", 256)  # a small window for the test
    engine = ChatEngine(model)
    history = []
    for i in range(8):
        history += [{"role": "user", "content": f"Question {i}: " + "tell me more " * 5},
                    {"role": "assistant", "content": f"Answer {i}: " + "here is more " * 5}]
    stream = engine.reply([*history, {"role": "user", "content": "Last one?"}],
                          GREEDY.with_changes(max_new_tokens=32))
    assert stream.plan.dropped[:2] == [0, 1]
    assert len(stream.plan.prompt_ids) + 32 <= 256
    "".join(stream)
    assert stream.stats.dropped_messages == stream.plan.dropped


def test_engine_imports_without_qt():
    code = ("import sys; sys.modules['PySide6'] = None; import desktop.engine, desktop.terminal;"
            " print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.stdout.strip() == "ok", result.stderr


def test_terminal_one_shot_answers_paris(default_model):
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "chat", "--model", str(default_model), "--prompt",
         "What is the capital of France?", "--temperature", "0", "--stats", "--device", "cpu"],
        capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert '"decode_tokens_per_s"' in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    ["a\x00b NUL inside", "lone \ud800 surrogate", "שלום עולם مرحبا بالعالم",
     "e\u0301\u0301\u0301 combining", "\u202eright-to-left override"],
)
def test_hostile_text_input_is_answered(engine, text):
    stream, pieces = ask(engine, text, GREEDY.with_changes(max_new_tokens=6))
    assert stream.stats.stop_reason in ("eos", "length")
    assert "".join(pieces) == stream.text


@pytest.mark.parametrize(
    "settings",
    [SamplingSettings(temperature=5.0, top_k=1_000_000, top_p=1.0, min_p=0.0, max_new_tokens=4),
     SamplingSettings(temperature=0.01, top_k=1, top_p=1e-9, min_p=0.99, max_new_tokens=4),
     SamplingSettings(temperature=1.0, repetition_penalty=2.0, repetition_window=8192,
                      max_new_tokens=4),
     SamplingSettings(temperature=0.0, max_new_tokens=1, seed=2**63 - 1)],
)
def test_settings_at_their_edges_generate(engine, settings):
    stream, _ = ask(engine, "Hello", settings)
    assert stream.stats.new_tokens <= settings.max_new_tokens
    assert stream.stats.stop_reason in ("eos", "length")


def test_stop_string_cuts_the_reply(engine):
    engine.reset()
    full, _ = ask(engine, "Count from 1 to 10, separated by commas.",
                  GREEDY.with_changes(max_new_tokens=40))
    assert "," in full.text
    cut, _ = ask(engine, "Count from 1 to 10, separated by commas.",
                 GREEDY.with_changes(max_new_tokens=40, stop_strings=(",",)))
    assert cut.stats.stop_reason == "stop_string"
    assert cut.text == full.text.split(",")[0]


def test_a_one_megabyte_message_is_refused_with_what_fits(engine):
    with pytest.raises(ContextOverflowError, match="1,000,000 characters, more than the model"):
        engine.reply([{"role": "user", "content": "長い" * 500_000}], GREEDY)
