"""Tiny real models for fast tests: a GPT-2 and a Llama with random weights and a small
byte-level BPE tokenizer, written as ordinary Hugging Face folders.

The folders (and their exports) are cached under ``models/.cache/`` keyed by a hash of this
file (and, for exports, of the export package), so a rerun reuses them and any change to the
generators or the pipeline rebuilds them.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "models" / ".cache"

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A tiny model still needs a tokenizer that covers every byte.",
    "def add(a, b):\n    return a + b\n",
    "小模型也要能处理中文。",
    "Hello, world! How are you today? 🙂",
    "Lighthouses, ledgers and harbours: the keeper wrote down the weather every night.",
]
VOCAB_SIZE = 400
CONTEXT = 128


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(file.relative_to(REPO).as_posix().encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def generator_key() -> str:
    return _digest(Path(__file__))


def export_key() -> str:
    return _digest(Path(__file__), REPO / "export")


def cached(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """``CACHE/<name>-<key>``, built once by ``build(folder)`` and renamed into place."""
    target = CACHE / f"{name}-{key}"
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
    try:
        build(work / "out")
        try:
            (work / "out").rename(target)
        except OSError:
            if not target.is_dir():  # else another test run built it meanwhile
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def build_tokenizer(folder: Path) -> int:
    """A GPT-2 style byte-level BPE trained on a few sentences; returns its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return len(fast)


def build_gpt2(folder: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = build_tokenizer(folder)
    config = GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=64,
        vocab_size=vocab,
        n_positions=CONTEXT,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)


def build_llama(folder: Path, varied: bool = False) -> None:
    """``varied``: weights drawn wider (standard deviation 0.2) and norm scales from [0.5, 1.5],
    as in trained models. The default initialisation gives near-constant output and all-ones
    norms, which the ONNX export folds away (so the fused graph cannot be rebuilt from it)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = build_tokenizer(folder)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=CONTEXT,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=True,
        initializer_range=0.2 if varied else 0.02,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if varied:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):
                    param.uniform_(0.5, 1.5)
    model.save_pretrained(folder)


# One tiny model per family the fused layout builds, each switching on what makes the family
# different from Llama (tests/export/test_builders.py).
FAMILY_BASE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
FAMILY_WINDOW = {"sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"]}
FAMILIES: dict[str, dict] = {
    "llama": {
        "tie_word_embeddings": False,
        "attention_bias": True,
        "mlp_bias": True,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    },
    "mistral": {"sliding_window": 8},
    "qwen2": {
        "tie_word_embeddings": False,
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                         "original_max_position_embeddings": 64},
    },
    "qwen3": {"tie_word_embeddings": True,
              "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
    "phi3": {
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "partial_rotary_factor": 0.5,
        "max_position_embeddings": 512,
        "original_max_position_embeddings": 128,
        "rope_scaling": {"type": "longrope",
                         "short_factor": [1.0, 1.5, 2.0, 3.0, 1.0, 1.2, 1.1, 1.0],
                         "long_factor": [2.0, 3.0, 4.0, 8.0, 2.0, 2.0, 2.0, 2.0]},
    },
    "gemma2": {"query_pre_attn_scalar": 24, "attn_logit_softcapping": 5.0,
               "final_logit_softcapping": 5.0, **FAMILY_WINDOW},
    "gemma3_text": {"query_pre_attn_scalar": 24, "rope_local_base_freq": 1000.0,
                    "rope_theta": 100000.0, "rope_scaling": {"rope_type": "linear",
                                                             "factor": 4.0}, **FAMILY_WINDOW},
    "granite": {"embedding_multiplier": 12.0, "attention_multiplier": 0.1,
                "residual_multiplier": 0.2, "logits_scaling": 4.0},
    "olmo2": {},
}


def build_family(family: str, folder: Path, neutral_norms: bool = False) -> None:
    """A tiny random ``family`` model with the tokenizer above and trained-like weights:
    projections, embeddings and biases of std 0.2, norms in [0.5, 1.5] (``neutral_norms``:
    exactly as transformers initialises them, ones, or zeros for Gemma's 1 + w)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    vocab = build_tokenizer(folder)
    config = AutoConfig.for_model(family, **{**FAMILY_BASE, **FAMILIES[family],
                                             "vocab_size": vocab})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    offset = 1.0 if family.startswith("gemma") else 0.0  # Gemma stores w of (1 + w)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.endswith("norm.weight"):
                param.normal_(0.0, 0.2)
            elif neutral_norms:
                param.fill_(1.0 - offset)
            else:
                param.uniform_(0.5 - offset, 1.5 - offset)
    model.save_pretrained(folder)


def export_tiny(source: Path, recipe: str, force: bool = False) -> Callable[[Path], None]:
    """A builder that exports ``source`` with ``recipe`` into the given folder (``force``:
    keep it whatever the quality gate says; random weights have many near-tied logits)."""

    def build(folder: Path) -> None:
        from export.pipeline import ExportSettings, export_model

        folder.mkdir(parents=True)
        export_model(
            ExportSettings(source=str(source), recipe=recipe, name="model", out_dir=folder,
                           force=force)
        )

    return build


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _llama_cpp_permute(weight: Any, heads: int) -> Any:
    """llama.cpp's converter stores Q and K rows interleaved for its rotary kernel."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def build_llama_gguf(source: Path, pre: str = "gpt-2") -> Callable[[Path], None]:
    """A builder writing the tiny Llama at ``source`` as ``tiny-llama.gguf`` (f32 tensors),
    the way llama.cpp's converter lays one out: tokenizer (byte-level BPE, pre-tokenizer
    ``pre``), chat template and ids in the header (bos ``<|im_start|>``, eos ``<|im_end|>``,
    as in SmolLM2's GGUF)."""

    def build(folder: Path) -> None:
        import json

        import gguf
        from safetensors.numpy import load_file

        config = json.loads((source / "config.json").read_text())
        tokenizer = json.loads((source / "tokenizer.json").read_text())
        weights = load_file(str(source / "model.safetensors"))
        heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
        folder.mkdir(parents=True)
        writer = gguf.GGUFWriter(str(folder / "tiny-llama.gguf"), "llama")
        writer.add_name("tiny llama")
        writer.add_context_length(config["max_position_embeddings"])
        writer.add_embedding_length(config["hidden_size"])
        writer.add_block_count(config["num_hidden_layers"])
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_head_count(heads)
        writer.add_head_count_kv(kv_heads)
        writer.add_rope_dimension_count(config["hidden_size"] // heads)
        writer.add_rope_freq_base(float(config["rope_theta"]))
        writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
        writer.add_vocab_size(config["vocab_size"])
        vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda item: item[1])
        specials = {token["content"] for token in tokenizer["added_tokens"]}
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list([token for token, _ in vocab])
        writer.add_token_types([
            gguf.TokenType.CONTROL if token in specials else gguf.TokenType.NORMAL
            for token, _ in vocab
        ])
        writer.add_token_merges([
            " ".join(merge) if isinstance(merge, list) else merge
            for merge in tokenizer["model"]["merges"]
        ])
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_pad_token_id(2)
        writer.add_unk_token_id(0)
        writer.add_add_bos_token(False)
        writer.add_chat_template(CHAT_TEMPLATE)
        writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
        for layer in range(config["num_hidden_layers"]):
            for hf_name, gguf_name in GGUF_NAMES.items():
                weight = weights[f"model.layers.{layer}.{hf_name}.weight"]
                if gguf_name == "attn_q":
                    weight = _llama_cpp_permute(weight, heads)
                elif gguf_name == "attn_k":
                    weight = _llama_cpp_permute(weight, kv_heads)
                writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", weight)
        writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return build
