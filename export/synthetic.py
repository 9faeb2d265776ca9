"""Random-weight Llama-shaped models for speed benchmarks (``onnxchat bench --shape``).

Speed does not depend on the values of the weights, so a model of a given shape needs no
training and no download: this writes random 4-bit blocks into one GGUF file, then builds
the fused OnnxChat graph from that same file with the converter real GGUF sources go
through (``export.gguf_blocks``). Both runtimes therefore compute with identical weights of
the same quantization type, and the comparison measures only the runtimes.

``python -m export.synthetic --shape 1b --out DIR`` writes ``DIR/model.gguf``,
``DIR/onnx/model.onnx`` and ``DIR/shape.json``, into a partial folder renamed into place
when complete, so an interrupted build never looks finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32  # elements per Q4_0 / Q4_1 block
SHAPE_FILE = "shape.json"
GGUF_FILE = "model.gguf"
ONNX_FILE = "onnx/model.onnx"


@dataclass(frozen=True)
class SyntheticShape:
    """A Llama decoder's hyper-parameters (tied embeddings, no biases, SiLU MLP)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    context_length: int = 4096
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    #: the LM head is the embedding table (Llama 3.2 1B) or a matrix of its own (Llama 3 8B)
    tie_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def parameters(self) -> int:
        """Weights in the matrices (the embedding counted once: it is tied to the LM head)."""
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        layer = h * (h + 2 * kv) + h * h + 3 * h * self.intermediate_size
        heads = 1 if self.tie_embeddings else 2
        return self.num_layers * layer + heads * self.vocab_size * h


#: ``1b`` is Llama 3.2 1B's shape, ``7b`` Llama 3 8B's (untied LM head, 8.0B weights);
#: ``tiny`` runs the same path in seconds (for tests).
SHAPES = {
    "1b": SyntheticShape(hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8,
                         intermediate_size=8192, vocab_size=128256),
    "7b": SyntheticShape(hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8,
                         intermediate_size=14336, vocab_size=128256, context_length=8192,
                         tie_embeddings=False),
    "tiny": SyntheticShape(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                           intermediate_size=256, vocab_size=512, context_length=512),
}
QUANTS = ("q4_0", "q4_1")
#: The standard deviation of a 4-bit value uniform over −7…7.
VALUE_STD = float(np.sqrt((15**2 - 1) / 12))


def _random_blocks(rng: np.random.Generator, rows: int, k: int, quant: str) -> np.ndarray:
    """(rows, K/32 · block bytes) uint8 of GGUF blocks with weights of mean 0 and std ≈
    1/sqrt(K), so activations stay in a normal range through every layer.

    The 4-bit values (code − 8) are uniform over −7…7, not over all sixteen codes: −8…7 has a
    mean of −0.5 steps, a bias trained weights do not have, which spread the 1B model's
    attention scores until softmax underflowed into subnormal floats (its attention ran 2.5x
    slower in ONNX Runtime than with centred weights; models/README.md "CPU decode speed")."""
    import gguf

    blocks = k // QK
    scale = 1.0 / (VALUE_STD * np.sqrt(k))
    d = (scale * rng.uniform(0.8, 1.2, (rows, blocks))).astype(np.float16)
    values = rng.integers(1, 16, (rows, blocks, QK), dtype=np.uint8)
    # GGUF's 4-bit blocks keep element j in the low nibble of byte j, element j + 16 in its
    # high nibble.
    codes = values[..., : QK // 2] | (values[..., QK // 2 :] << 4)
    fields = [d.view(np.uint8).reshape(rows, blocks, 2)]
    if quant == "q4_1":
        fields.append((-8.0 * d).astype(np.float16).view(np.uint8).reshape(rows, blocks, 2))
    data = np.concatenate([*fields, codes], axis=-1).reshape(rows, -1)
    kind = gguf.GGMLQuantizationType.Q4_0 if quant == "q4_0" else gguf.GGMLQuantizationType.Q4_1
    assert data.shape[1] == blocks * gguf.GGML_QUANT_SIZES[kind][1]
    return data


def write_gguf(shape: SyntheticShape, quant: str, path: Path, seed: int = 0) -> None:
    """A llama-architecture GGUF file of random ``quant`` blocks (norms are ones) with a
    placeholder vocabulary, which llama.cpp loads like any other model."""
    import gguf

    if quant not in QUANTS:
        raise ValueError(f"unknown quantization {quant!r}; use one of {', '.join(QUANTS)}")
    kind = gguf.GGMLQuantizationType.Q4_0 if quant == "q4_0" else gguf.GGMLQuantizationType.Q4_1
    rng = np.random.default_rng(seed)
    h, d = shape.hidden_size, shape.head_dim
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"random llama {shape.hidden_size}x{shape.num_layers}")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0 if quant == "q4_0"
                         else gguf.LlamaFileType.MOSTLY_Q4_1)
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(h)
    writer.add_block_count(shape.num_layers)
    writer.add_feed_forward_length(shape.intermediate_size)
    writer.add_head_count(shape.num_heads)
    writer.add_head_count_kv(shape.num_kv_heads)
    writer.add_rope_dimension_count(d)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_norm_eps)
    writer.add_vocab_size(shape.vocab_size)
    # A SentencePiece-style vocabulary of placeholders: the benchmark feeds token ids.
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    tokens += [f"t{i}" for i in range(shape.vocab_size - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    types += [gguf.TokenType.NORMAL] * (shape.vocab_size - len(types))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * shape.vocab_size)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    # Declared first, then generated and written one at a time: a 7B file is never held.
    kv = shape.num_kv_heads * d
    matrices = [("token_embd.weight", shape.vocab_size, h)]
    for i in range(shape.num_layers):
        p = f"blk.{i}."
        matrices += [(p + "attn_q.weight", shape.num_heads * d, h),
                     (p + "attn_k.weight", kv, h), (p + "attn_v.weight", kv, h),
                     (p + "attn_output.weight", h, shape.num_heads * d),
                     (p + "ffn_gate.weight", shape.intermediate_size, h),
                     (p + "ffn_up.weight", shape.intermediate_size, h),
                     (p + "ffn_down.weight", h, shape.intermediate_size)]
    if not shape.tie_embeddings:
        matrices.append(("output.weight", shape.vocab_size, h))
    norms = [f"blk.{i}.{n}_norm.weight" for i in range(shape.num_layers) for n in ("attn", "ffn")]
    norms.append("output_norm.weight")
    for name, rows, k in matrices:
        nbytes = rows * k // QK * gguf.GGML_QUANT_SIZES[kind][1]
        writer.add_tensor_info(name, (rows, nbytes // rows), np.dtype(np.uint8), nbytes, kind)
    for name in norms:
        writer.add_tensor_info(name, (h,), np.dtype(np.float32), h * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _name, rows, k in matrices:
        writer.write_tensor_data(_random_blocks(rng, rows, k, quant))
    for _name in norms:
        writer.write_tensor_data(np.ones(h, np.float32))
    writer.close()


def build_onnx(shape: SyntheticShape, gguf_path: Path, onnx_path: Path) -> None:
    """The fused graph of the GGUF file's own blocks, as the ``q4-gguf`` recipe builds it:
    weights read one tensor at a time and written straight to the graph's external data when
    the model is over protobuf's limit (``export.onnx_files.save_streamed``)."""
    from export.builders import DecoderShape, FusedOptions, builder_for
    from export.gguf_blocks import gguf_tensors
    from export.onnx_files import save_streamed

    decoder = DecoderShape(
        num_layers=shape.num_layers, hidden_size=shape.hidden_size, num_heads=shape.num_heads,
        num_kv_heads=shape.num_kv_heads, head_dim=shape.head_dim,
        intermediate_size=shape.intermediate_size, vocab_size=shape.vocab_size,
        rms_norm_eps=shape.rms_norm_eps, rope_theta=shape.rope_theta,
        context_length=shape.context_length, tie_word_embeddings=shape.tie_embeddings)
    builder = builder_for(decoder)
    weights = builder.streamed_weights(gguf_tensors(gguf_path, decoder))
    options = FusedOptions(max_length=shape.context_length)
    save_streamed(lambda store: builder.build(weights, options, store), onnx_path)


def build(name: str, quant: str, out: Path, seed: int = 0, gguf_only: bool = False) -> Path:
    """Write the ``name``-shaped pair into ``out`` (replaced if present), or only its GGUF
    file (the source of an export benchmark); returns ``out``."""
    shape = SHAPES[name]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        started = time.monotonic()
        write_gguf(shape, quant, partial / GGUF_FILE, seed)
        if not gguf_only:
            build_onnx(shape, partial / GGUF_FILE, partial / ONNX_FILE)
        facts = {"shape": name, "quant": quant, "seed": seed, "parameters": shape.parameters(),
                 "build_seconds": round(time.monotonic() - started, 1),
                 **dataclasses.asdict(shape)}
        (partial / SHAPE_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.synthetic",
        description="Write a random-weight Llama of a named shape as a GGUF file and as the "
        "fused OnnxChat graph of the same blocks (for speed benchmarks).")
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--quant", choices=QUANTS, default="q4_0")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gguf-only", action="store_true",
                        help="write only the GGUF file (a source to export)")
    args = parser.parse_args(argv)
    try:
        build(args.shape, args.quant, args.out, args.seed, args.gguf_only)
    except OSError as exc:
        print(f"python -m export.synthetic: error: cannot write {args.out}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
