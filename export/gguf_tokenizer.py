"""The tokenizer of a GGUF file, rebuilt from its header as llama.cpp reads it.

Why: transformers' GGUF loader converts the vocabulary into a ``tokenizer.json`` that can
split text differently from llama.cpp (a Gemma file's held-out text became 617 tokens where
llama.cpp makes 397), and it misses end-of-turn tokens. The header holds everything llama.cpp
itself tokenizes with, so the export builds the ``tokenizer.json`` from it, following
llama.cpp's rules (``src/llama-vocab.cpp``):

* ``tokenizer.ggml.model = "llama"`` (SentencePiece; Llama 2, Mistral, Phi-3, Gemma): spaces
  become ``▁``; a ``▁`` is put in front of every stretch of text that starts the input or
  follows a special token, unless ``tokenizer.ggml.add_space_prefix`` is false (Gemma); pieces
  merge by score, highest first — a BPE whose merges are every split of a vocabulary piece
  into two pieces, ranked by the merged piece's score; characters outside the vocabulary
  fall back to ``<0xXX>`` byte tokens.
* ``tokenizer.ggml.model = "gpt2"`` (byte-level BPE; Llama 3, Qwen, SmolLM, Granite, Phi-4):
  the text is split by the regular expressions llama.cpp uses for the named
  ``tokenizer.ggml.pre``, in order, then byte-level encoded and merged by the stored merges;
  some pre-tokenizers take a whole word from the vocabulary before merging (``ignore_merges``).
* Control, user-defined and unknown tokens are matched in the text first, as written; Phi-3
  files strip the whitespace after most of them.

The result is canonical (see models/README.md): nothing is added to an encoding; the chat
template supplies BOS. End-of-generation tokens are collected the way llama.cpp does: the
header's eos, eot and eom ids and the tokens named like an end of turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.gguf_header import read_metadata
from export.tokenizer_files import BYTE_LEVEL_DECODER, BYTE_LEVEL_POST_PROCESSOR

# gguf.TokenType values
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# The regular expressions below are the original ones of the families' tokenizer.json files,
# which llama.cpp adapts to its own regex engine (same splits); runtimes that pattern-match
# known pre-tokenizers (onnxruntime-genai) recognise these forms.
_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_LLAMA3 = (
    _CONTRACTIONS + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_QWEN2 = (
    _CONTRACTIONS + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_GPT4O = (
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    + _CONTRACTIONS + "?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    + _CONTRACTIONS + "?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_TEKKEN = (
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
# llama.cpp's regexes for files without a pre-tokenizer name (no tokenizer.json has them)
_DEFAULT = (
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
)


def _split(regex: str) -> dict[str, Any]:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated",
            "invert": False}


@dataclass(frozen=True)
class _Pre:
    """One llama.cpp pre-tokenizer as tokenizers components: ``steps`` split the text first,
    then a byte-level step that also applies GPT-2's regex when ``gpt2_regex``; with
    ``ignore_merges`` a whole word found in the vocabulary skips the merges."""

    steps: tuple[dict[str, Any], ...] = ()
    gpt2_regex: bool = False
    ignore_merges: bool = False

    def pre_tokenizer(self) -> dict[str, Any]:
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                      "use_regex": self.gpt2_regex}
        if not self.steps:
            return byte_level
        return {"type": "Sequence", "pretokenizers": [*self.steps, byte_level]}


_GPT2_PRE = _Pre(gpt2_regex=True)
_DIGITS_THEN_GPT2 = _Pre(({"type": "Digits", "individual_digits": True},), gpt2_regex=True)
# tokenizer.ggml.pre → pre-tokenizer, for the byte-level families people chat with.
PRE_TOKENIZERS: dict[str, _Pre] = {
    "default": _Pre(tuple(_split(r) for r in _DEFAULT)),
    "gpt-2": _GPT2_PRE,
    "phi-2": _GPT2_PRE,
    "olmo": _GPT2_PRE,
    "mpt": _GPT2_PRE,
    "llama-bpe": _Pre((_split(_LLAMA3),), ignore_merges=True),
    "llama3": _Pre((_split(_LLAMA3),), ignore_merges=True),
    "llama-v3": _Pre((_split(_LLAMA3),), ignore_merges=True),
    "falcon3": _Pre((_split(_LLAMA3),), ignore_merges=True),
    "pixtral": _Pre((_split(_LLAMA3),), ignore_merges=True),
    "dbrx": _Pre((_split(_LLAMA3),)),
    "smaug-bpe": _Pre((_split(_LLAMA3),)),
    "qwen2": _Pre((_split(_QWEN2),)),
    "deepseek-r1-qwen": _Pre((_split(_QWEN2),)),
    "stablelm2": _Pre((_split(_QWEN2),)),
    "smollm": _DIGITS_THEN_GPT2,
    "starcoder": _DIGITS_THEN_GPT2,
    "refact": _DIGITS_THEN_GPT2,
    "command-r": _DIGITS_THEN_GPT2,
    "exaone": _DIGITS_THEN_GPT2,
    "gpt-4o": _Pre((_split(_GPT4O),)),
    "llama4": _Pre((_split(_GPT4O),)),
    "tekken": _Pre((_split(_TEKKEN),), ignore_merges=True),
}
# Token texts llama.cpp treats as ending generation whatever the header says.
END_OF_GENERATION_TEXTS = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
})
_SPACE = "\u2581"


class UnsupportedGgufTokenizer(ValueError):
    """The header names a tokenizer model or pre-tokenizer this module does not rebuild."""


@dataclass
class GgufVocab:
    """The tokenizer fields of a GGUF header."""

    model: str
    pre: str | None
    tokens: list[str]
    types: list[int]
    scores: list[float]
    merges: list[str]
    ids: dict[str, int | None]
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool
    chat_template: str | None
    name: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def special_ids(self) -> list[int]:
        """Tokens matched in the text before anything else, as llama.cpp does."""
        return [i for i, kind in enumerate(self.types) if kind in (CONTROL, USER_DEFINED, UNKNOWN)]

    def end_of_generation_ids(self) -> list[int]:
        """llama.cpp's end-of-generation set: eos, eot, eom and the end-of-turn names."""
        found = {i for i, text in enumerate(self.tokens) if text in END_OF_GENERATION_TEXTS}
        for key in ("eos", "eot", "eom"):
            token = self.ids.get(key)
            if token is not None:
                found.add(token)
        return sorted(found)


def read_vocab(path: Path) -> GgufVocab:
    """The tokenizer fields of ``path``; raises ValueError when it has no vocabulary."""
    metadata = read_metadata(path)

    def value(key: str, default: Any = None) -> Any:
        return metadata.get(key, default)

    tokens = value("tokenizer.ggml.tokens")
    if not tokens:
        raise ValueError(f"{path.name} has no tokenizer.ggml.tokens")
    model = value("tokenizer.ggml.model", "llama")
    # llama.cpp renames empty tokens so that every id keeps a distinct text
    tokens = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
    ids: dict[str, int | None] = {}
    for key, gguf_key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                          ("eot", "eot_token_id"), ("eom", "eom_token_id"),
                          ("unk", "unknown_token_id"), ("pad", "padding_token_id")):
        found = value(f"tokenizer.ggml.{gguf_key}")
        ids[key] = int(found) if isinstance(found, int) and 0 <= found < len(tokens) else None
    spm = model == "llama"
    return GgufVocab(
        model=model,
        pre=value("tokenizer.ggml.pre"),
        tokens=tokens,
        types=list(value("tokenizer.ggml.token_type", [NORMAL] * len(tokens))),
        scores=[float(s) for s in value("tokenizer.ggml.scores", [0.0] * len(tokens))],
        merges=list(value("tokenizer.ggml.merges", [])),
        ids=ids,
        add_bos=bool(value("tokenizer.ggml.add_bos_token", spm)),
        add_eos=bool(value("tokenizer.ggml.add_eos_token", False)),
        add_space_prefix=bool(value("tokenizer.ggml.add_space_prefix", spm)) and spm,
        chat_template=value("tokenizer.chat_template"),
        name=str(value("general.name", "")),
    )


def _added_tokens(vocab: GgufVocab) -> list[dict[str, Any]]:
    """Control, user-defined and unknown tokens, matched in raw text before the model runs.
    Phi-3 files strip whitespace after every one of them but <unk>, <s> and <|endoftext|>
    (llama.cpp sets this by the model's name)."""
    name = vocab.name.lower()
    phi3 = "phi-3" in name or "phi3" in name
    added = []
    for i in vocab.special_ids:
        text = vocab.tokens[i]
        added.append({
            "id": i,
            "content": text,
            "single_word": False,
            "lstrip": False,
            "rstrip": phi3 and text not in ("<unk>", "<s>", "<|endoftext|>"),
            "normalized": False,
            "special": vocab.types[i] != USER_DEFINED,
        })
    return added


def _vocab_map(vocab: GgufVocab) -> dict[str, int]:
    """Text → id; a repeated text keeps its last id, as llama.cpp's lookup does."""
    return {text: i for i, text in enumerate(vocab.tokens)}


def _spm_merges(vocab: GgufVocab, lookup: dict[str, int]) -> list[list[str]]:
    """Every split of a piece into two pieces, the highest-scoring result first: llama.cpp
    merges the adjacent pair whose concatenation scores highest, so a BPE ranking its merges
    by that score makes the same choices."""
    ranked = []
    for text, token in lookup.items():
        if vocab.types[token] == BYTE or len(text) < 2:
            continue
        score = vocab.scores[token]
        for cut in range(1, len(text)):
            left, right = text[:cut], text[cut:]
            if left in lookup and right in lookup:
                ranked.append((-score, token, lookup[left], left, right))
    ranked.sort()
    return [[left, right] for *_, left, right in ranked]


def _spm_tokenizer(vocab: GgufVocab) -> dict[str, Any]:
    lookup = _vocab_map(vocab)
    unk = vocab.ids.get("unk")
    normalizers: list[dict[str, Any]] = []
    if vocab.add_space_prefix:
        normalizers.append({"type": "Prepend", "prepend": _SPACE})
    normalizers.append({"type": "Replace", "pattern": {"String": " "}, "content": _SPACE})
    decoders: list[dict[str, Any]] = [
        {"type": "Replace", "pattern": {"String": _SPACE}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ]
    if vocab.add_space_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(vocab),
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": vocab.tokens[unk] if unk is not None else None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": lookup,
            "merges": _spm_merges(vocab, lookup),
        },
    }


def _bpe_tokenizer(vocab: GgufVocab) -> dict[str, Any]:
    pre = PRE_TOKENIZERS.get(vocab.pre or "default")
    if pre is None:
        raise UnsupportedGgufTokenizer(f"pre-tokenizer {vocab.pre!r}")
    merges = []
    for merge in vocab.merges:
        cut = merge.find(" ", 1)
        merges.append([merge[:cut], merge[cut + 1:]] if cut > 0 else [merge, ""])
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(vocab),
        "normalizer": None,
        "pre_tokenizer": pre.pre_tokenizer(),
        "post_processor": dict(BYTE_LEVEL_POST_PROCESSOR),
        "decoder": dict(BYTE_LEVEL_DECODER),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": pre.ignore_merges,
            "vocab": _vocab_map(vocab),
            "merges": merges,
        },
    }


def tokenizer_json(vocab: GgufVocab) -> dict[str, Any]:
    """The ``tokenizer.json`` that encodes text as llama.cpp does for this vocabulary;
    raises :class:`UnsupportedGgufTokenizer` for models other than SentencePiece and
    byte-level BPE, or a pre-tokenizer not in :data:`PRE_TOKENIZERS`."""
    if vocab.model == "llama":
        return _spm_tokenizer(vocab)
    if vocab.model == "gpt2":
        return _bpe_tokenizer(vocab)
    raise UnsupportedGgufTokenizer(f"tokenizer model {vocab.model!r}")


@dataclass
class RebuiltTokenizer:
    """What :func:`rebuild_tokenizer` did: the transformers tokenizer now saved in the
    folder (``None``: not rebuilt, transformers' conversion is needed), where the ids come
    from, and llama.cpp's end-of-generation tokens for the file."""

    hf_tokenizer: Any | None
    origin: str
    stop_token_ids: list[int]


def rebuild_tokenizer(path: Path, hf_dir: Path) -> RebuiltTokenizer:
    """The tokenizer rebuilt from ``path``'s header (with its chat template and special-token
    names), saved in ``hf_dir``. A tokenizer model or pre-tokenizer not rebuilt here is left
    to transformers' conversion (``export.loading.converted_tokenizer``), and ``origin`` says
    so."""
    import json

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    vocab = read_vocab(path)
    stops = vocab.end_of_generation_ids()
    try:
        data = tokenizer_json(vocab)
    except UnsupportedGgufTokenizer as exc:
        return RebuiltTokenizer(
            None, f"transformers' GGUF conversion ({exc} is not rebuilt from the header)", stops
        )

    def name(key: str) -> str | None:
        token = vocab.ids.get(key)
        return vocab.tokens[token] if token is not None else None

    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        bos_token=name("bos"),
        eos_token=name("eos"),
        unk_token=name("unk"),
        pad_token=name("pad"),
        clean_up_tokenization_spaces=False,
    )
    if vocab.chat_template:
        fast.chat_template = vocab.chat_template
    fast.save_pretrained(hf_dir)
    kind = "SentencePiece" if vocab.model == "llama" else (
        f"byte-level BPE, pre-tokenizer {vocab.pre or 'default'}"
    )
    return RebuiltTokenizer(fast, f"GGUF header ({kind})", stops)
