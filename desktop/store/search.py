"""Turning what someone types in the search box into a safe FTS5 query.

FTS5 has its own query language (quotes, ``*``, ``-``, ``AND``/``OR``/``NOT``/``NEAR``,
parentheses, column filters); typed text must never be parsed as that language, or a stray
quote raises a syntax error. Each whitespace-separated word becomes a quoted string (inner
quotes doubled) with a prefix star, so the words are matched literally, all of them, each as
the start of a word: ``NEAR(x`` searches for the words "near" and "x".
"""

from __future__ import annotations


def fts_query(text: str) -> str | None:
    """The FTS5 query for ``text``, or ``None`` when it has no word to search for."""
    terms = []
    # FTS5 reads the query as a C string: a NUL would end it inside a quoted word.
    for word in text.replace("\0", " ").split():
        # The tokenizer drops punctuation; a word of punctuation only would be an empty
        # phrase, which FTS5 rejects with a prefix star.
        if any(ch.isalnum() for ch in word):
            terms.append('"' + word.replace('"', '""') + '"*')
    return " ".join(terms) if terms else None
