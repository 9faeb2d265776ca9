"""Streaming never emits a broken character, and the stream equals the full decode."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from desktop.engine.detok import REPLACEMENT, StreamingDetokenizer

TEXTS = [
    "你好，我是人工智能助手。请问你有什么需要帮助的吗？",
    "日本語のテキストです。ひらがなとカタカナと漢字。",
    "한국어 문장도 제대로 나와야 합니다.",
    "Family: 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, skin tone 👍🏽, keycap 1️⃣.",
    "def f(x):\n    if x:\n        return  '  spaced  '\n\treturn None\n",
    "Mixed: naïve café — «quotes» and 数学 ∑ x² ≤ ∞.",
]


@pytest.fixture(scope="module")
def tokenizer(default_model: Path) -> Tokenizer:
    return Tokenizer.from_file(str(default_model / "tokenizer.json"))


def stream_pieces(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    detok = StreamingDetokenizer(tokenizer)
    pieces = [detok.push(i) for i in ids]
    pieces.append(detok.flush())
    return pieces


@pytest.mark.parametrize("text", TEXTS)
def test_stream_equals_full_decode_without_broken_characters(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    pieces = stream_pieces(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert not any(REPLACEMENT in p for p in pieces)


def test_chinese_splits_across_tokens_are_held_back(tokenizer):
    text = "你好，我是人工智能助手。"
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert len(ids) > len(text) // 2  # byte-level BPE really splits these characters
    pieces = [p for p in stream_pieces(tokenizer, ids) if p]
    assert all(REPLACEMENT not in p for p in pieces)
    assert "".join(pieces) == text


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_any_text_round_trips_through_the_stream(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert "".join(stream_pieces(tokenizer, ids)) == tokenizer.decode(ids).rstrip(REPLACEMENT)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(3, 49151), max_size=40))
def test_any_token_sequence_streams_to_its_decode(tokenizer, ids):
    pieces = stream_pieces(tokenizer, ids)
    # A sequence may stop inside a character: those dangling bytes are dropped at the end.
    assert "".join(pieces) == tokenizer.decode(ids).rstrip(REPLACEMENT)
    assert not any(p.endswith(REPLACEMENT) for p in pieces if p)


def test_a_reply_cut_inside_a_character_ends_cleanly(tokenizer):
    ids = tokenizer.encode("你好世界", add_special_tokens=False).ids
    cut = ids[:-1]
    assert tokenizer.decode(cut).endswith(REPLACEMENT)  # the last character is incomplete
    pieces = stream_pieces(tokenizer, cut)
    assert REPLACEMENT not in "".join(pieces)
    assert "你好世界".startswith("".join(pieces))
