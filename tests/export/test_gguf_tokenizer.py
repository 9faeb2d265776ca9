"""The tokenizer rebuilt from a GGUF header gives llama.cpp's ids.

Small vocabulary-only GGUF files are written the way llama.cpp's converter writes them: a
SentencePiece vocabulary (scores, byte tokens, control tokens; with and without the leading
space, as Llama 2/Phi-3 and Gemma files differ) and a byte-level BPE vocabulary under each
pre-tokenizer name the chat families use. The rebuilt ``tokenizer.json`` must encode
multilingual text (English, Chinese, code, emoji, numbers, whitespace runs, special tokens)
into exactly the ids llama.cpp's own tokenizer gives for the same file.

llama-cpp-python compiles llama.cpp, so ``make test`` does not install it: the vocabulary
files and llama.cpp's ids for them are kept in ``data/llama_cpp/`` (written by
``record_llama_cpp.py``), and the tests compare with that recording always and with the live
llama.cpp too where llama-cpp-python is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
from tokenizers import SentencePieceBPETokenizer, Tokenizer

from export.gguf_tokenizer import (
    BYTE,
    CONTROL,
    NORMAL,
    PRE_TOKENIZERS,
    UNKNOWN,
    USER_DEFINED,
    UnsupportedGgufTokenizer,
    read_vocab,
    tokenizer_json,
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog. I'm sure they'll say it's fine.",
    "A tiny model still needs a tokenizer that covers every byte.",
    "def add(a, b):\n    return a + b\n\nprint(add(12345, 678))\n",
    "小模型也要能处理中文。每天晚上，守塔人都记下天气。",
    "Hello, world! How are you today? 🙂",
    "Lighthouses, ledgers and harbours: the keeper wrote down the weather every night.",
    "In 2024 there were 3.14159 reasons   to\ttabulate\n\n\nthings.",
]
TEXTS = [
    "Hello world! I'm here, they'll see it's 12345 and 3.14.",
    " leading space,  two spaces,\ttab,\n\nnew lines\n",
    "每天晚上，守塔人都记下天气。未知的字：龘。",
    "def f(x):\n    return x ** 2  # squares 🦙🙂\n",
    "Emoji 🙂🦙 and accents: café, naïve, Äpfel.",
]
SPM_CONTROLS = ["<start_of_turn>", "<end_of_turn>", "<|user|>", "<|end|>", "<|assistant|>",
                "<|endoftext|>"]
BPE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def write_vocab(path: Path, tokens: list[str], types: list[int], *, model: str,
                scores: list[float] | None = None, merges: list[str] | None = None,
                pre: str | None = None, add_space_prefix: bool | None = None,
                name: str = "tiny", eos: int = 2) -> Path:
    """A vocabulary-only GGUF with the few hyperparameters llama.cpp reads before it."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(128)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model(model)
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if scores is not None:
        writer.add_token_scores(scores)
    if merges is not None:
        writer.add_token_merges(merges)
    if add_space_prefix is not None:
        writer.add_add_space_prefix(add_space_prefix)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(eos)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def spm_vocab(path: Path, add_space_prefix: bool, name: str = "tiny") -> Path:
    """A SentencePiece vocabulary as llama.cpp stores one: <unk>, <s>, </s>, control tokens,
    a user-defined token, the 256 byte tokens, then pieces scored by merge order."""
    trainer = SentencePieceBPETokenizer(add_prefix_space=True)
    trainer.train_from_iterator(CORPUS * 3, vocab_size=320, min_frequency=1,
                                show_progress=False)
    pieces = sorted(trainer.get_vocab().items(), key=lambda item: item[1])
    tokens = ["<unk>", "<s>", "</s>", *SPM_CONTROLS, "<tool>"]
    types = [UNKNOWN, CONTROL, CONTROL, *[CONTROL] * len(SPM_CONTROLS), USER_DEFINED]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    scores = [0.0] * len(tokens)
    for rank, (piece, _) in enumerate(p for p in pieces if p[0] != "<unk>"):
        tokens.append(piece)
        types.append(NORMAL)
        scores.append(-float(rank))
    return write_vocab(path, tokens, types, model="llama", scores=scores,
                       add_space_prefix=add_space_prefix, name=name)


def bpe_vocab(path: Path, pre: str) -> Path:
    """A byte-level BPE vocabulary with ChatML specials, under the pre-tokenizer ``pre``."""
    from tokenizers import models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=BPE_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 3, trainer)
    data = json.loads(tokenizer.to_str())
    tokens = [t for t, _ in sorted(data["model"]["vocab"].items(), key=lambda item: item[1])]
    types = [CONTROL if t in BPE_SPECIALS else NORMAL for t in tokens]
    merges = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    return write_vocab(path, tokens, types, model="gpt2", merges=merges, pre=pre)


def ours(path: Path, text: str) -> list[int]:
    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json(read_vocab(path))))
    return tokenizer.encode(text, add_special_tokens=False).ids


def with_specials(text: str, specials: list[str]) -> str:
    return f"{specials[0]}{text}{specials[1]}\n{specials[-1]} {text}"


VOCAB_DIR = Path(__file__).resolve().parent / "data" / "llama_cpp"
RECORDED = VOCAB_DIR / "ids.json"
BPE_PRE = ["llama-bpe", "qwen2", "smollm", "gpt-2", "refact", "gpt-4o", "tekken", "default"]
PHI3_TEXTS = ["<|user|>\nHello world<|end|>\n<|assistant|>\n", "<s> Hello</s>  x"]


def write_vocabularies(folder: Path) -> None:
    """The vocabulary files of the recording (``record_llama_cpp.py``)."""
    folder.mkdir(parents=True, exist_ok=True)
    spm_vocab(folder / "llama-spm.gguf", True)
    spm_vocab(folder / "gemma-spm.gguf", False)
    spm_vocab(folder / "phi3.gguf", True, name="Phi-3 mini")
    for pre in BPE_PRE:
        bpe_vocab(folder / f"bpe-{pre}.gguf", pre)


def recorded_cases() -> dict[str, list[str]]:
    """Vocabulary file → the texts whose llama.cpp ids are recorded."""
    spm = [*TEXTS, with_specials(TEXTS[0], SPM_CONTROLS[:2]), "use <tool> here<end_of_turn>"]
    bpe = [*TEXTS, with_specials(TEXTS[0], BPE_SPECIALS)]
    return {"llama-spm.gguf": spm, "gemma-spm.gguf": spm, "phi3.gguf": PHI3_TEXTS,
            **{f"bpe-{pre}.gguf": bpe for pre in BPE_PRE}}


def llama_cpp_ids(name: str) -> tuple[Path, list[str], list[list[int]]]:
    """A recorded vocabulary file, its texts, and llama.cpp's ids for them — checked against
    the live llama.cpp where llama-cpp-python is installed."""
    path, texts = VOCAB_DIR / name, recorded_cases()[name]
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))["ids"].get(name, {})
    missing = [text for text in texts if text not in recorded]
    assert not missing, f"no recorded ids for {missing[0]!r}: run record_llama_cpp.py"
    want = [recorded[text] for text in texts]
    try:
        import llama_cpp
    except ImportError:
        return path, texts, want
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    live = [llm.tokenize(text.encode("utf-8"), add_bos=False, special=True) for text in texts]
    assert live == want, f"llama.cpp {llama_cpp.__version__} no longer gives the recorded ids"
    return path, texts, want


@pytest.mark.parametrize("name", ["llama-spm.gguf", "gemma-spm.gguf"])
def test_sentencepiece_gives_llama_cpp_ids(name: str) -> None:
    path, texts, wanted = llama_cpp_ids(name)
    for text, want in zip(texts, wanted, strict=True):
        assert ours(path, text) == want, text


def test_phi3_strips_whitespace_after_its_special_tokens() -> None:
    """llama.cpp marks Phi-3's special tokens (by the model's name) to eat the whitespace
    after them: "<|user|>\\nHi" tokenizes like "<|user|>Hi"."""
    path, texts, wanted = llama_cpp_ids("phi3.gguf")
    got = [ours(path, text) for text in texts]
    assert got[0][:2] == ours(path, "<|user|>Hello")[:2]
    for text, mine, want in zip(texts, got, wanted, strict=True):
        assert mine == want, text


@pytest.mark.parametrize("pre", BPE_PRE)
def test_byte_level_bpe_gives_llama_cpp_ids(pre: str) -> None:
    path, texts, wanted = llama_cpp_ids(f"bpe-{pre}.gguf")
    for text, want in zip(texts, wanted, strict=True):
        assert ours(path, text) == want, text


def test_the_recorded_vocabularies_are_the_ones_the_tests_build(tmp_path: Path) -> None:
    """The committed files are what ``write_vocabularies`` writes today, so the recording
    describes the vocabularies these tests are about."""
    write_vocabularies(tmp_path)
    for name in recorded_cases():
        assert read_vocab(tmp_path / name) == read_vocab(VOCAB_DIR / name), name


def test_every_named_pre_tokenizer_builds_and_round_trips(tmp_path: Path) -> None:
    text = "".join(TEXTS)
    for pre in PRE_TOKENIZERS:
        path = bpe_vocab(tmp_path / f"{pre}.gguf", pre)
        tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json(read_vocab(path))))
        assert tokenizer.decode(tokenizer.encode(text).ids) == text, pre


def test_sentencepiece_space_prefix_follows_the_header(tmp_path: Path) -> None:
    with_prefix = spm_vocab(tmp_path / "a.gguf", True)
    without = spm_vocab(tmp_path / "b.gguf", False)
    vocab = read_vocab(with_prefix)
    first = vocab.tokens[ours(with_prefix, "Hello")[0]]
    assert first.startswith("\u2581")
    assert not read_vocab(without).tokens[ours(without, "Hello")[0]].startswith("\u2581")
    # after a control token the prefix comes back, as llama.cpp does
    ids = ours(with_prefix, "<start_of_turn>Hello")
    assert vocab.tokens[ids[1]].startswith("\u2581")
    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json(vocab)))
    assert tokenizer.decode(ours(with_prefix, TEXTS[2])) == TEXTS[2]


def test_end_of_generation_tokens_are_llama_cpps(tmp_path: Path) -> None:
    path = spm_vocab(tmp_path / "spm.gguf", False)
    vocab = read_vocab(path)
    index = vocab.tokens.index
    assert vocab.end_of_generation_ids() == sorted(
        [2, index("<end_of_turn>"), index("<|end|>"), index("<|endoftext|>")])


def test_unknown_tokenizer_models_are_named(tmp_path: Path) -> None:
    path = write_vocab(tmp_path / "t5.gguf", ["<pad>", "</s>", "a"], [CONTROL, CONTROL, NORMAL],
                       model="t5", scores=[0.0, 0.0, -1.0], eos=1)
    with pytest.raises(UnsupportedGgufTokenizer, match="tokenizer model 't5'"):
        tokenizer_json(read_vocab(path))
    path = bpe_vocab(tmp_path / "falcon.gguf", "falcon")
    with pytest.raises(UnsupportedGgufTokenizer, match="pre-tokenizer 'falcon'"):
        tokenizer_json(read_vocab(path))


def test_header_reader_agrees_with_gguf_py(tmp_path: Path) -> None:
    from export.gguf_header import GgufHeaderError, read_metadata

    path = spm_vocab(tmp_path / "spm.gguf", True)
    fields = gguf.GGUFReader(str(path)).fields
    expected = {key: field.contents() for key, field in fields.items()
                if not key.startswith("GGUF.")}
    assert read_metadata(path) == expected
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(GgufHeaderError, match="truncated"):
        read_metadata(cut)
