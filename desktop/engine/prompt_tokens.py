"""Token ids of a chat prompt in which the messages' text is only ever text.

Why: the rendered prompt is one string, and the tokenizer turns every special token's text in
it into that control token, wherever it came from. A message that quotes one — a question about
chat templates, a pasted log, ``<|im_end|>`` typed on purpose — would end its turn early or
open a new one with another role, so the model would answer a conversation nobody wrote. The
template's own control tokens must stay control tokens.

So each special token's text in a message is marked before the template renders it (and the
mark character, where a message has it, doubled), and the rendered prompt is tokenized as
usual; a special token found after an odd run of marks is the user's text. The text between
two of the template's special tokens that holds marks is encoded again, marks undone, with
special tokens read as text. A prompt whose messages hold neither a special token's text nor
the mark gets exactly the tokenizer's ids for the rendered text, as before.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from tokenizers import Tokenizer

from desktop.engine.context import Message

#: Put before each special token's text in a message (a private-use character no template
#: changes; doubled where a message has it); it never reaches the model.
MARK = "\ue000"


class PromptTokens:
    """Marks messages for the template and encodes what it rendered (module docstring)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        specials = {token_id: token.content
                    for token_id, token in tokenizer.get_added_tokens_decoder().items()
                    if token.special and token.content}
        self._special_ids = set(specials)
        # Longest first, so that a token whose text starts another's is not taken for it.
        alternatives = "|".join(re.escape(text) for text
                                in sorted(set(specials.values()), key=len, reverse=True))
        self._special = re.compile(alternatives) if specials else None
        #: A doubled mark, or a mark and the token it marks: what undoing the marks replaces.
        self._marked = re.compile(f"{MARK}({MARK}|{alternatives})")
        self._as_text: Tokenizer | None = None  # made when a message first quotes a token
        self._lock = threading.Lock()

    def mark(self, messages: Sequence[Message]) -> list[Message]:
        """``messages`` with each special token's text in their content marked as text."""
        special = self._special
        if special is None:
            return list(messages)
        return [{**m, "content": special.sub(lambda s: MARK + s.group(0),
                                             content.replace(MARK, MARK * 2))}
                if (content := m.get("content")) and (MARK in content or special.search(content))
                else m for m in messages]

    def encode(self, rendered: str) -> list[int]:
        """Token ids of ``rendered``, a prompt rendered from messages :meth:`mark` returned."""
        encoding = self._tokenizer.encode(rendered, add_special_tokens=False)
        if self._special is None or MARK not in rendered:
            return encoding.ids
        ids: list[int] = []
        part: list[int] = []  # ids since the template's last special token
        start = 0  # where the text of ``part`` starts
        for token_id, (begin, end) in zip(encoding.ids, encoding.offsets, strict=True):
            before = begin
            while before and rendered[before - 1] == MARK:
                before -= 1
            if token_id not in self._special_ids or (begin - before) % 2:
                part.append(token_id)
                continue
            ids += self._text_ids(rendered[start:begin], part)
            ids.append(token_id)
            part, start = [], end
        return ids + self._text_ids(rendered[start:], part)

    def _text_ids(self, text: str, ids: list[int]) -> list[int]:
        """``ids``, the tokenizer's for ``text``, unless ``text`` holds marks: then ``text``,
        marks undone, encoded with special tokens read as text."""
        if MARK not in text:
            return ids
        with self._lock:
            if self._as_text is None:
                self._as_text = Tokenizer.from_str(self._tokenizer.to_str())
                self._as_text.encode_special_tokens = True
        plain = self._marked.sub(lambda m: m.group(1), text)
        return self._as_text.encode(plain, add_special_tokens=False).ids
