"""Streaming detokenizer that never emits a broken character.

Byte-level BPE splits one Chinese character or emoji over several tokens; decoding a partial
sequence yields U+FFFD. We decode a short window of recent tokens, emit only the text that
is new since the last emission, and hold back anything that ends in U+FFFD until the bytes
that complete it arrive (the incremental scheme vLLM and text-generation-inference use).
The concatenation of all pieces plus :meth:`StreamingDetokenizer.flush` equals the full decode,
less a character left incomplete at the very end.
"""

from __future__ import annotations

from tokenizers import Tokenizer

REPLACEMENT = "\ufffd"


class StreamingDetokenizer:
    """Turns a growing list of token ids into text pieces, one call per token."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._emitted = ""  # text already handed out, equal to a prefix of the full decode
        self._prefix_offset = 0  # window start: decoding from here is stable
        self._read_offset = 0  # tokens whose text has been emitted

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text (possibly empty)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        if len(new_text) <= len(prefix_text) or new_text.endswith(REPLACEMENT):
            return ""
        if not new_text.startswith(prefix_text):
            # The window's boundary fell inside a character: widen it and wait.
            return ""
        piece = new_text[len(prefix_text) :]
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        self._emitted += piece
        return piece

    def flush(self) -> str:
        """Return whatever is still held back (called once, when the reply ends).

        A reply cut off by the token limit can end inside a character; those dangling bytes
        decode to U+FFFD and are dropped, so no piece ever shows a broken character.
        """
        # Every emitted piece was cut at a complete-character boundary of this same decode,
        # so the emitted text is a prefix of the full decode.
        rest = self._decode(self._ids)[len(self._emitted) :].rstrip(REPLACEMENT)
        self._emitted += rest
        self._prefix_offset = self._read_offset = len(self._ids)
        return rest

    @property
    def text(self) -> str:
        """All text emitted so far."""
        return self._emitted
