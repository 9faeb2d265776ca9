"""The tokenizer files of an exported model: a canonical ``tokenizer.json`` and honest
special tokens.

Why: the ``tokenizer.json`` transformers writes after loading a GGUF file is a byte-level
BPE dressed up as a SentencePiece one (a ``TemplateProcessing`` that prepends
``<|im_start|>``, ``byte_fallback``, a llama-style decoder), and its token *names* can be
wrong (``eos_token`` = ``<|im_start|>`` for the default model). Runtimes that trust the file
(onnxruntime-genai, transformers.js, plain ``tokenizers``) then encode an extra token or stop
at the start of the next turn. So the export rewrites the file into a plain byte-level one
when needed, proves it encodes the same ids, and derives special tokens and stop ids from ids
(generation config, GGUF header, the chat template's structure), never from names alone.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.files import read_json, write_json
from export.sources import GgufInfo

BYTE_LEVEL_POST_PROCESSOR = {
    "type": "ByteLevel",
    "add_prefix_space": False,
    "trim_offsets": False,
    "use_regex": True,
}
BYTE_LEVEL_DECODER = {
    "type": "ByteLevel",
    "add_prefix_space": True,
    "trim_offsets": True,
    "use_regex": True,
}
# Sentinels for reading a chat template's structure; no template contains them.
_USER = "OnnxchatUserSentinel"
_ASSISTANT = "OnnxchatAssistantSentinel"
SPECIAL_NAMES = ("bos", "eos", "pad", "unk")
SOURCE_TOKENIZER = "the source's tokenizer.json"


def _contains_byte_level(component: dict[str, Any] | None) -> bool:
    if not component:
        return False
    if component.get("type") == "ByteLevel":
        return True
    children = (
        component.get("pretokenizers")
        or component.get("processors")
        or component.get("decoders")
        or []
    )
    return any(_contains_byte_level(child) for child in children)


def _is_empty_normalizer(normalizer: dict[str, Any] | None) -> bool:
    return normalizer is None or (
        normalizer.get("type") == "Sequence" and not normalizer.get("normalizers")
    )


def is_byte_level_bpe(tokenizer: dict[str, Any]) -> bool:
    model = tokenizer.get("model") or {}
    return model.get("type") == "BPE" and _contains_byte_level(tokenizer.get("pre_tokenizer"))


def needs_canonical(tokenizer: dict[str, Any]) -> bool:
    """A byte-level BPE whose decoder, post-processor or fallback is not plain byte-level."""
    if not is_byte_level_bpe(tokenizer):
        return False
    decoder = tokenizer.get("decoder") or {}
    post = tokenizer.get("post_processor")
    return (
        decoder.get("type") != "ByteLevel"
        or (post is not None and post.get("type") != "ByteLevel")
        or bool(tokenizer["model"].get("byte_fallback"))
        or (tokenizer.get("normalizer") is not None
            and _is_empty_normalizer(tokenizer.get("normalizer")))
    )


def canonicalise(tokenizer: dict[str, Any]) -> dict[str, Any]:
    """The same byte-level BPE with a ``ByteLevel`` decoder and post-processor, no byte
    fallback, no empty normalizer. The pre-tokenizer is kept: it decides the ids."""
    out = copy.deepcopy(tokenizer)
    if _is_empty_normalizer(out.get("normalizer")):
        out["normalizer"] = None
    out["post_processor"] = dict(BYTE_LEVEL_POST_PROCESSOR)
    out["decoder"] = dict(BYTE_LEVEL_DECODER)
    out["model"]["byte_fallback"] = False
    return out


def check_equivalent(original: dict[str, Any], canonical: dict[str, Any], text: str) -> None:
    """The canonical file must encode like the original without special tokens and decode
    ``text`` back exactly; anything else would change what the model sees."""
    from tokenizers import Tokenizer

    before = Tokenizer.from_str(json.dumps(original))
    after = Tokenizer.from_str(json.dumps(canonical))
    expected = before.encode(text, add_special_tokens=False).ids
    got = after.encode(text).ids
    if got != expected:
        raise ExportError(
            "The rewritten tokenizer encodes differently from the source's "
            f"({len(got)} vs {len(expected)} tokens): export with --debug and report it."
        )
    if after.decode(got, skip_special_tokens=False) != text:
        raise ExportError(
            "The rewritten tokenizer does not decode text back unchanged: "
            "export with --debug and report it."
        )


def check_source_ids(source: Any, exported: Any, text: str) -> None:
    """A folder's export must encode ``text`` into exactly the ids the folder's own tokenizer
    gives (as transformers loads it from the folder), or the model sees other text."""
    expected = list(source.encode(text, add_special_tokens=False))
    got = exported.encode(text, add_special_tokens=False).ids
    if got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False))
                      if a != b),
                     min(len(got), len(expected)))
        raise ExportError(
            f"The exported tokenizer.json encodes the validation text into {len(got)} tokens "
            f"where the folder's own tokenizer makes {len(expected)} (first difference at "
            f"token {first}): export with --debug and report it."
        )


@dataclass
class TemplateTokens:
    """What a chat template's structure says about special tokens."""

    end_of_turn_token_id: int | None = None
    turn_marker_ids: set[int] = field(default_factory=set)


def analyse_chat_template(hf_tokenizer: Any, special_ids: dict[str, int]) -> TemplateTokens:
    """Find the token that ends an assistant turn and the tokens that open turns.

    Renders a tiny conversation with sentinel texts: the special token right after the
    assistant's text ends a turn (a stop token); special tokens that introduce a turn (e.g.
    ``<|im_start|>``) must never stop generation, whatever the token names claim.
    """
    result = TemplateTokens()
    if not getattr(hf_tokenizer, "chat_template", None):
        return result
    conversation = [
        {"role": "user", "content": _USER},
        {"role": "assistant", "content": _ASSISTANT},
    ]
    try:
        full = hf_tokenizer.apply_chat_template(conversation, tokenize=False)
        prompt = hf_tokenizer.apply_chat_template(
            conversation[:1], tokenize=False, add_generation_prompt=True
        )
    except Exception:
        return result
    by_length = sorted(special_ids.items(), key=lambda item: -len(item[0]))
    if _ASSISTANT in full:
        tail = full[full.index(_ASSISTANT) + len(_ASSISTANT):].lstrip(" \n")
        for content, token_id in by_length:
            if tail.startswith(content):
                result.end_of_turn_token_id = token_id
                break
    scanned = ""
    if _USER in full:
        scanned += full[: full.index(_USER)]
    if _USER in prompt:
        scanned += prompt[prompt.index(_USER) + len(_USER):]
    for content, token_id in special_ids.items():
        if content in scanned and token_id != result.end_of_turn_token_id:
            result.turn_marker_ids.add(token_id)
    return result


@dataclass
class TokenizerInfo:
    """The special-token facts the manifest and genai_config record."""

    canonicalised: bool
    special_tokens: dict[str, int | None]
    stop_token_ids: list[int]
    chat_template: str | None
    vocab_size: int
    origin: str = SOURCE_TOKENIZER


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def write_tokenizer_files(
    hf_dir: Path,
    hf_tokenizer: Any,
    out_dir: Path,
    *,
    gguf: GgufInfo | None,
    context_length: int,
    check_text: str,
    origin: str = SOURCE_TOKENIZER,
    source_stop_ids: list[int] | None = None,
) -> TokenizerInfo:
    """Write tokenizer.json, tokenizer_config.json, special_tokens_map.json and
    chat_template.jinja into ``out_dir`` from the tokenizer saved in ``hf_dir``.

    ``origin`` says where that tokenizer came from (for a GGUF source: rebuilt from its
    header, see export/gguf_tokenizer.py); ``source_stop_ids`` are the tokens the source
    runtime ends generation on (llama.cpp's set for a GGUF), kept unless they open a turn."""
    from tokenizers import Tokenizer

    source_json = hf_dir / "tokenizer.json"
    if not source_json.is_file():
        raise ExportError(
            "The model's tokenizer has no fast (tokenizer.json) form: add a tokenizer.json "
            "to the model folder."
        )
    raw = read_json(source_json)
    canonicalised = needs_canonical(raw)
    final = canonicalise(raw) if canonicalised else raw
    if canonicalised:
        check_equivalent(raw, final, check_text)
    tokenizer = Tokenizer.from_str(json.dumps(final))
    if gguf is None:
        check_source_ids(hf_tokenizer, tokenizer, check_text)
    special_ids = {
        token["content"]: int(token["id"])
        for token in final.get("added_tokens", [])
        if token.get("special")
    }

    declared: dict[str, int | None] = {}
    for name in SPECIAL_NAMES:
        owner = gguf if gguf is not None else hf_tokenizer
        declared[name] = getattr(owner, f"{name}_token_id", None)

    generation = _read_optional(hf_dir / "generation_config.json")
    config = read_json(hf_dir / "config.json")
    generation_eos = _as_id_list(generation.get("eos_token_id", config.get("eos_token_id")))
    template = analyse_chat_template(hf_tokenizer, special_ids)
    markers = template.turn_marker_ids

    stop_ids = [i for i in generation_eos if i not in markers]
    for candidate in (template.end_of_turn_token_id, declared["eos"], *(source_stop_ids or [])):
        if candidate is not None and candidate not in markers and candidate not in stop_ids:
            stop_ids.append(candidate)
    if not stop_ids:
        raise ExportError(
            "The model declares no end-of-sequence token (generation_config.json, "
            "tokenizer or chat template): add eos_token_id to its generation_config.json."
        )
    eos_id = stop_ids[0]
    if declared["eos"] is not None and declared["eos"] not in markers:
        eos_id = declared["eos"]
    pad_id = declared["pad"]
    if pad_id is None:
        pad_id = generation.get("pad_token_id", config.get("pad_token_id"))
    special_tokens: dict[str, int | None] = {
        "bos_token_id": declared["bos"] if declared["bos"] is not None else _first(
            generation.get("bos_token_id", config.get("bos_token_id"))
        ),
        "eos_token_id": eos_id,
        "pad_token_id": _first(pad_id),
        "unk_token_id": declared["unk"],
        "end_of_turn_token_id": template.end_of_turn_token_id,
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    chat_template = _chat_template_text(hf_tokenizer)
    names = {
        name: tokenizer.id_to_token(special_tokens[f"{name}_token_id"])
        if special_tokens[f"{name}_token_id"] is not None
        else None
        for name in SPECIAL_NAMES
    }
    plain_byte_level = canonicalised or (gguf is not None and is_byte_level_bpe(final))
    _write_tokenizer_config(
        hf_dir, out_dir, names, chat_template, context_length, plain_byte_level
    )
    _write_special_tokens_map(hf_dir, out_dir, names)
    if chat_template:
        (out_dir / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    return TokenizerInfo(
        canonicalised=canonicalised,
        origin=origin,
        special_tokens=special_tokens,
        stop_token_ids=sorted(stop_ids),
        chat_template=chat_template,
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
    )


def _first(value: Any) -> int | None:
    ids = _as_id_list(value)
    return ids[0] if ids else None


def _read_optional(path: Path) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


def _chat_template_text(hf_tokenizer: Any) -> str | None:
    template = getattr(hf_tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), None)
    return template or None


def _write_tokenizer_config(
    hf_dir: Path,
    out_dir: Path,
    names: dict[str, str | None],
    chat_template: str | None,
    context_length: int,
    plain_byte_level: bool,
) -> None:
    """transformers and transformers.js read this file; it must agree with tokenizer.json."""
    config = _read_optional(hf_dir / "tokenizer_config.json")
    for name, content in names.items():
        config[f"{name}_token"] = content
        config.pop(f"{name}_token_id", None)
    if plain_byte_level:
        # A plain byte-level BPE: GPT2Tokenizer loads tokenizer.json without re-adding a
        # BOS template or SentencePiece-style prefix spaces (LlamaTokenizer would).
        config["tokenizer_class"] = "GPT2Tokenizer"
        config["add_bos_token"] = False
        config["add_eos_token"] = False
        config["add_prefix_space"] = False
        config["clean_up_tokenization_spaces"] = False
        config.pop("legacy", None)
    if chat_template:
        config["chat_template"] = chat_template
    config["model_max_length"] = context_length
    write_json(out_dir / "tokenizer_config.json", config)


def _write_special_tokens_map(hf_dir: Path, out_dir: Path, names: dict[str, str | None]) -> None:
    tokens_map = _read_optional(hf_dir / "special_tokens_map.json")
    for name, content in names.items():
        if content is None:
            tokens_map.pop(f"{name}_token", None)
        else:
            tokens_map[f"{name}_token"] = content
    write_json(out_dir / "special_tokens_map.json", tokens_map)
