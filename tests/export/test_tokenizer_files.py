"""The canonical tokenizer.json and the special tokens derived from ids, not names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

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


@pytest.mark.slow
def test_default_model_tokenizer_is_the_canonical_rewrite(
    default_model: Path, gguf_tokenizer: tuple[Path, object]
) -> None:
    folder, _ = gguf_tokenizer
    shipped = _json(default_model / "tokenizer.json")
    assert shipped == canonicalise(_json(folder / "tokenizer.json"))
