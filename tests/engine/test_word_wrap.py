"""Replies wrapped for a terminal as they stream: between words, never inside code blocks,
the same whatever pieces the text arrives in."""

from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.text import WordWrap, cell_width


def wrapped(text: str, width: int, pieces: list[int] | None = None, column: int = 0) -> str:
    wrap = WordWrap(width, column)
    out, start = [], 0
    for size in pieces or [len(text)]:
        out.append(wrap.feed(text[start:start + size]))
        start += size
    out.append(wrap.feed(text[start:]))
    return "".join(out) + wrap.finish()


def columns(line: str) -> int:
    """Where a terminal's cursor ends after ``line`` (tab stops every 8 columns)."""
    column = 0
    for char in line:
        column += 8 - column % 8 if char == "\t" else cell_width(char)
    return column


def test_words_move_to_the_next_line_whole():
    assert wrapped("the quick brown fox jumps over the lazy dog", 15) == (
        "the quick brown\nfox jumps over\nthe lazy dog")
    # the line already holds "Assistant: "
    assert wrapped("one two three", 16, column=11) == "one\ntwo three"


def test_code_blocks_line_breaks_and_indentation_are_kept():
    text = ("Here is some code for you:\n\n```python\nvalues = [one, two, three, four, five]\n"
            "```\n  indented line")
    assert wrapped(text, 16) == ("Here is some\ncode for you:\n\n```python\n"
                                 "values = [one, two, three, four, five]\n```\n  indented line")


def test_wide_characters_break_without_spaces():
    assert wrapped("你好世界你好世界", 9) == "你好世界\n你好世界"
    assert columns("你好世界") == 8


def test_a_word_longer_than_the_line_is_left_to_the_terminal():
    assert wrapped("see https://example.com/a/very/long/path now", 12) == (
        "see\nhttps://example.com/a/very/long/path\nnow")


words = st.lists(st.text("abcdefghij你好🙂", min_size=1, max_size=12), min_size=1, max_size=40)
blanks = st.sampled_from([" ", "  ", "\n", " \n", "\t"])


@settings(max_examples=300, deadline=None)
@given(words, st.lists(blanks, min_size=40, max_size=40), st.integers(8, 40),
       st.lists(st.integers(1, 7), max_size=60))
def test_wrapping_keeps_the_words_and_the_width_whatever_the_pieces(parts, gaps, width,
                                                                    pieces):
    text = "".join(word + gap for word, gap in zip(parts, gaps, strict=False))
    whole = wrapped(text, width)
    assert wrapped(text, width, pieces) == whole  # streaming changes nothing
    assert "".join(whole.split()) == "".join(text.split())  # nothing lost, added or moved
    if all(cell_width(c) < 2 for c in text):  # wide characters may break without a space
        assert whole.split() == text.split()
    for line in whole.split("\n"):
        if columns(line) > width:  # only a single word too long for any line
            assert len(line.split()) == 1 and all(cell_width(c) < 2 for c in line)
