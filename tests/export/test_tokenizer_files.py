"""The canonical tokenizer.json and the special tokens derived from ids, not names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from export.errors import ExportError
from export.sources import GgufInfo
from export.tokenizer_files import (
    analyse_chat_template,
    canonicalise,
    needs_canonical,
    write_tokenizer_files,
)

MULTILINGUAL = (
    "Hello, world! The lighthouse keeper's ledger (1871–1903) says: wind SW, visibility poor.\n"
    "城市的夜晚并不总是喧闹的。学习一门新的语言，最难的往往不是语法。\n"
    "Emoji: 🙂🚀👩‍💻 and accents: déjà vu, Straße, naïve.\n"
    "def f(x: int) -> int:\n\treturn x ** 2  # tabs, spaces   and\r\nCRLF\n"
    "  leading spaces, trailing spaces   "
)
GGUF_IDS = GgufInfo("llama", bos_token_id=1, eos_token_id=2, pad_token_id=2, unk_token_id=0,
                    add_bos_token=False)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_gguf_conversion_is_not_canonical(gguf_tokenizer: tuple[Path, object]) -> None:
    """The documented trap, so the rewrite below is not a no-op."""
    folder, _ = gguf_tokenizer
    converted = _json(folder / "tokenizer.json")
    assert converted["post_processor"]["type"] == "TemplateProcessing"
    assert converted["model"]["byte_fallback"] is True
    assert needs_canonical(converted)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.encode("hi").ids[0] == 1  # a stray <|im_start|> in front


def test_canonical_file_encodes_the_same_ids_and_round_trips(
    gguf_tokenizer: tuple[Path, object],
) -> None:
    folder, _ = gguf_tokenizer
    converted_json = _json(folder / "tokenizer.json")
    canonical_json = canonicalise(converted_json)
    converted = Tokenizer.from_str(json.dumps(converted_json))
    canonical = Tokenizer.from_str(json.dumps(canonical_json))
    ids = canonical.encode(MULTILINGUAL).ids
    assert ids == converted.encode(MULTILINGUAL, add_special_tokens=False).ids
    assert canonical.decode(ids) == MULTILINGUAL
    chatml = "<|im_start|>user\nhi 你好<|im_end|>\n<|im_start|>assistant\n"
    chat_ids = canonical.encode(chatml).ids
    assert chat_ids[0] == 1 and chat_ids.count(1) == 2  # no extra <|im_start|>
    assert canonical.decode(chat_ids, skip_special_tokens=False) == chatml
    assert canonical_json["decoder"]["type"] == "ByteLevel"
    assert canonical_json["post_processor"]["type"] == "ByteLevel"
    assert canonical_json["post_processor"]["trim_offsets"] is False
    assert canonical_json["normalizer"] is None
    assert canonical_json["model"]["byte_fallback"] is False
    assert canonical_json["pre_tokenizer"] == converted_json["pre_tokenizer"]
    assert not needs_canonical(canonical_json)


def test_gpt2_style_tokenizer_is_left_alone(tiny_gpt2_hf: Path, tiny_gpt2_model: Path) -> None:
    source = _json(tiny_gpt2_hf / "tokenizer.json")
    assert not needs_canonical(source)
    assert _json(tiny_gpt2_model / "tokenizer.json")["model"] == source["model"]


def test_template_structure_gives_end_of_turn_and_turn_openers(
    gguf_tokenizer: tuple[Path, object],
) -> None:
    folder, tokenizer = gguf_tokenizer
    specials = {t["content"]: t["id"] for t in _json(folder / "tokenizer.json")["added_tokens"]
                if t["special"]}
    found = analyse_chat_template(tokenizer, specials)
    assert found.end_of_turn_token_id == 2  # <|im_end|>
    assert found.turn_marker_ids == {1}  # <|im_start|>


def test_wrong_eos_name_never_becomes_a_stop_token(
    gguf_tokenizer: tuple[Path, object], tmp_path: Path
) -> None:
    """The GGUF loader names <|im_start|> as eos; stop ids and the written files must not."""
    folder, tokenizer = gguf_tokenizer
    assert tokenizer.eos_token == "<|im_start|>"
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    for path in folder.iterdir():
        (hf_dir / path.name).write_bytes(path.read_bytes())
    (hf_dir / "config.json").write_text(json.dumps({"eos_token_id": 2, "bos_token_id": 1}))
    (hf_dir / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    out = tmp_path / "out"
    for gguf in (GGUF_IDS, None):  # with the GGUF header's ids, and from names alone
        info = write_tokenizer_files(
            hf_dir, tokenizer, out, gguf=gguf, context_length=8192, check_text=MULTILINGUAL
        )
        assert info.stop_token_ids == [2]
        assert 1 not in info.stop_token_ids
        assert info.special_tokens["eos_token_id"] == 2
        assert info.special_tokens["bos_token_id"] == 1
        assert info.canonicalised
        config = _json(out / "tokenizer_config.json")
        assert config["eos_token"] == "<|im_end|>"
        assert config["tokenizer_class"] == "GPT2Tokenizer"
        assert config["add_bos_token"] is False
        assert config["chat_template"] == (out / "chat_template.jinja").read_text()
        assert _json(out / "special_tokens_map.json")["eos_token"] == "<|im_end|>"


def test_transformers_loads_the_canonical_folder_without_a_bos(
    gguf_tokenizer: tuple[Path, object], tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    folder, tokenizer = gguf_tokenizer
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    for path in folder.iterdir():
        (hf_dir / path.name).write_bytes(path.read_bytes())
    (hf_dir / "config.json").write_text(json.dumps({"eos_token_id": 2}))
    out = tmp_path / "out"
    write_tokenizer_files(
        hf_dir, tokenizer, out, gguf=GGUF_IDS, context_length=8192, check_text=MULTILINGUAL
    )
    loaded = AutoTokenizer.from_pretrained(out)
    canonical = Tokenizer.from_file(str(out / "tokenizer.json"))
    prompt = loaded.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert loaded(prompt).input_ids == canonical.encode(prompt).ids
    assert loaded(MULTILINGUAL).input_ids == canonical.encode(MULTILINGUAL).ids
    assert loaded.decode(canonical.encode(MULTILINGUAL).ids) == MULTILINGUAL
    assert loaded.eos_token_id == 2


def test_a_folder_export_must_give_the_folders_own_ids(
    tiny_gpt2_hf: Path, tmp_path: Path
) -> None:
    """The folder's tokenizer as transformers loads it is the reference; a tokenizer.json
    that encodes otherwise (here: it lacks the prefix space the folder's config asks for)
    is refused rather than shipped."""
    from transformers import AutoTokenizer

    own = AutoTokenizer.from_pretrained(tiny_gpt2_hf, add_prefix_space=True)
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        (hf_dir / name).write_bytes((tiny_gpt2_hf / name).read_bytes())
    with pytest.raises(ExportError, match="the folder's own tokenizer makes"):
        write_tokenizer_files(hf_dir, own, tmp_path / "out", gguf=None, context_length=128,
                              check_text=MULTILINGUAL)
    same = AutoTokenizer.from_pretrained(tiny_gpt2_hf)
    info = write_tokenizer_files(hf_dir, same, tmp_path / "out", gguf=None, context_length=128,
                                 check_text=MULTILINGUAL)
    assert info.origin == "the source's tokenizer.json"


@pytest.mark.slow
def test_default_model_tokenizer_is_rebuilt_from_the_gguf_header(
    default_model: Path, gguf_tokenizer: tuple[Path, object]
) -> None:
    """Built from the header as llama.cpp reads it (pre-tokenizer "smollm": digits one by
    one); on this text it agrees with the canonical rewrite of transformers' conversion."""
    folder, _ = gguf_tokenizer
    manifest = _json(default_model / "manifest.json")
    assert manifest["tokenizer"]["origin"] == (
        "GGUF header (byte-level BPE, pre-tokenizer smollm)")
    shipped = Tokenizer.from_file(str(default_model / "tokenizer.json"))
    converted = Tokenizer.from_str(json.dumps(canonicalise(_json(folder / "tokenizer.json"))))
    assert shipped.encode(MULTILINGUAL).ids == converted.encode(MULTILINGUAL).ids
