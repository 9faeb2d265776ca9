"""Text at the edges: what a user pastes may not be valid Unicode text, and what a terminal
shows must neither run escape sequences nor break words."""

from __future__ import annotations

import unicodedata


def clean_text(text: str) -> str:
    """Replace lone UTF-16 surrogates (possible in a Python ``str`` from a clipboard or a
    terminal, impossible to encode as UTF-8) with U+FFFD; everything else, NUL bytes,
    right-to-left marks and combining characters included, is kept as typed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text



def one_line(text: str) -> str:
    """``text`` safe to print on one terminal line: control characters — line breaks, and
    escape sequences that recolour the terminal, retitle its window or forge a row of a
    listing — are shown escaped (``\\n``, ``\\x1b``); everything else as it is."""
    return "".join(repr(char)[1:-1] if unicodedata.category(char) == "Cc" else char
                   for char in text)


def cell_width(char: str) -> int:
    """Terminal columns ``char`` takes: two for wide East Asian characters and emoji, none for
    combining marks and joiners, one for the rest."""
    if unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


class WordWrap:
    """A reply streamed to a terminal ``width`` columns wide, broken between words rather than
    inside them (where the terminal itself would break).

    Text arrives a token at a time, so a word is held until the character after it shows
    where it ends. Lines inside fenced code blocks pass through as written: code copied
    from the terminal must be the code the model wrote. A wide character (Chinese, Japanese,
    Korean) may start a new line without a space before it; a word longer than the line is
    left to the terminal; line breaks in the text are kept."""

    def __init__(self, width: int, column: int = 0) -> None:
        self.width = max(width, 8)
        self.column = column  # columns already used on the line (a prefix such as "You: ")
        self._word: list[str] = []
        self._word_width = 0
        self._space = ""  # blanks since the last word: written only if the next word fits
        self._line: list[str] = []  # the text of the current line, to see code fences
        self._code = False

    def feed(self, text: str) -> str:
        """What to write now for ``text``."""
        out: list[str] = []
        for char in text:
            if char == "\n":
                self._place_word(out)
                self._space = ""
                out.append("\n")
                self.column = 0
                if "".join(self._line).lstrip().startswith("```"):
                    self._code = not self._code
                self._line.clear()
                continue
            self._line.append(char)
            width = cell_width(char)
            if self._code:
                out.append(char)
                self.column += width
            elif char in " \t":
                self._place_word(out)
                self._space += char
            elif width == 2:
                self._place_word(out)
                self._word, self._word_width = [char], 2
                self._place_word(out)
            else:
                self._word.append(char)
                self._word_width += width
        return "".join(out)

    def finish(self) -> str:
        """The word still held back (blanks at the very end are dropped)."""
        out: list[str] = []
        self._place_word(out)
        self._space = ""
        return "".join(out)

    def _place_word(self, out: list[str]) -> None:
        if not self._word:
            return
        column = self.column
        for blank_char in self._space:  # a tab reaches the next multiple of 8
            column += 8 - column % 8 if blank_char == "\t" else 1
        blank = column - self.column
        if self.column > 0 and self.column + blank + self._word_width > self.width:
            out.append("\n")
            self.column = 0
        else:
            out.append(self._space)
            self.column += blank
        out.extend(self._word)
        self.column += self._word_width
        self._word, self._word_width, self._space = [], 0, ""
