"""Fused decoder graph for fast CPU decoding.

The plain Optimum export runs attention, rotary embedding and RMSNorm as hundreds of small
ops per layer and concatenates the KV cache on every step; on a small model that per-step
overhead, not the weights, bounds decode speed. This module rebuilds the same decoder from
the Optimum export's own weights as a compact graph of ONNX Runtime contrib ops:

* ``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` for RMSNorm and
  the residual adds,
* one packed Q/K/V ``MatMulNBits`` feeding ``GroupQueryAttention`` with rotary embedding
  from cos/sin caches (``do_rotary=1``), which reads and writes the KV cache in place when
  past and present are bound to the same buffer,
* block-quantized ``MatMulNBits`` for every projection including the LM head,
* logits for the last position only.

Rebuilding is simpler and more robust than pattern-matching Optimum's graph, and it keeps the
Optimum export as the single source of weights and the reference the fused graph is validated
against. The layout is documented in ``models/README.md`` under "Fused layout".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS_DOMAIN = "com.microsoft"
OPSET = 17
# Model metadata a fused graph carries, so whoever writes the manifest reads it off the graph.
LAYOUT_KEY = "onnxchat.layout"
MAX_LENGTH_KEY = "onnxchat.max_length"
SHARE_BUFFER_KEY = "onnxchat.past_present_share_buffer"


@dataclass(frozen=True)
class DecoderShape:
    """Hyper-parameters of a Llama-style decoder, as the fused graph needs them."""

    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    context_length: int

    @classmethod
    def from_config(cls, config: dict) -> DecoderShape:
        """Read a Hugging Face ``config.json`` dict; refuse what the fused graph cannot express."""
        model_type = config.get("model_type")
        if model_type not in FUSABLE_MODEL_TYPES:
            raise ValueError(
                f"the fused layout supports {', '.join(sorted(FUSABLE_MODEL_TYPES))} models, "
                f"not {model_type!r}; export with the plain Optimum layout instead"
            )
        if config.get("rope_scaling"):
            raise ValueError(
                "the fused layout has no rope scaling yet; export with the plain Optimum layout"
            )
        if config.get("attention_bias") or config.get("mlp_bias"):
            raise ValueError("the fused layout has no projection biases; use the Optimum layout")
        if config.get("hidden_act", "silu") != "silu":
            raise ValueError(f"the fused layout needs a SiLU MLP, not {config['hidden_act']!r}")
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        return cls(
            num_layers=int(config["num_hidden_layers"]),
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(config.get("rope_theta", 10000.0)),
            context_length=int(config.get("max_position_embeddings", 2048)),
        )


FUSABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2"})


@dataclass
class DenseLinear:
    """``y = x @ weight`` with a float32 ``weight`` of shape (K, N)."""

    weight: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape  # type: ignore[return-value]


@dataclass
class BlockLinear:
    """A ``MatMulNBits`` weight: (N, K/block, block·bits/8) packed codes and (N, K/block) scales.

    Codes use the operator's implicit zero point 2^(bits-1). ``correction`` (K/block, N), when
    present, is multiplied by the per-block sums of the input and added to the output; it
    carries an affine offset per block (GGUF Q4_1's ``m``) exactly, which the operator's float
    zero points could also express but only through a much slower kernel.
    """

    in_features: int
    out_features: int
    bits: int
    block_size: int
    packed: np.ndarray
    scales: np.ndarray
    correction: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.in_features, self.out_features)


Linear = DenseLinear | BlockLinear


@dataclass
class LayerWeights:
    """One decoder layer. ``qkv`` is Q, K and V concatenated along the output features."""

    attn_norm: np.ndarray
    qkv: Linear
    o_proj: Linear
    mlp_norm: np.ndarray
    gate_proj: Linear
    up_proj: Linear
    down_proj: Linear


@dataclass
class DecoderWeights:
    """Everything the fused graph needs, in Hugging Face layout (rotate-half rotary)."""

    embed_tokens: np.ndarray
    layers: list[LayerWeights] = field(default_factory=list)
    final_norm: np.ndarray | None = None
    lm_head: Linear | None = None


# --------------------------------------------------------------------------------------
# Block quantization
# --------------------------------------------------------------------------------------


def pack_codes(codes: np.ndarray, bits: int, block_size: int) -> np.ndarray:
    """Pack unsigned codes (N, K) into MatMulNBits' (N, K/block, block·bits/8) layout.

    For 4 bits, element 2i of a block sits in the low nibble of byte i, element 2i+1 in the
    high nibble. K must be a multiple of ``block_size``.
    """
    n, k = codes.shape
    blocks = codes.reshape(n, k // block_size, block_size).astype(np.uint8)
    if bits == 8:
        return np.ascontiguousarray(blocks)
    if bits == 4:
        return np.ascontiguousarray(blocks[..., 0::2] | (blocks[..., 1::2] << 4))
    raise ValueError(f"unsupported bit width {bits}")


def quantize_symmetric(weight: np.ndarray, bits: int = 8, block_size: int = 32) -> BlockLinear:
    """Symmetric block quantization of a (K, N) float weight for ``MatMulNBits``.

    Each block of ``block_size`` input features per output gets one scale, absmax / (2^(b-1)-1),
    and codes offset by the operator's implicit zero point 2^(bits-1). K is zero-padded to a
    whole number of blocks, as the operator expects.
    """
    k, n = weight.shape
    pad = (-k) % block_size
    w = np.ascontiguousarray(weight.T, dtype=np.float32)
    if pad:
        w = np.pad(w, ((0, 0), (0, pad)))
    blocks = w.reshape(n, -1, block_size)
    qmax = (1 << (bits - 1)) - 1
    absmax = np.abs(blocks).max(axis=-1)
    scales = (absmax / qmax).astype(np.float32)
    safe = np.where(scales == 0, 1.0, scales)[..., None]
    q = np.clip(np.rint(blocks / safe), -qmax, qmax).astype(np.int32) + (1 << (bits - 1))
    return BlockLinear(
        in_features=k,
        out_features=n,
        bits=bits,
        block_size=block_size,
        packed=pack_codes(q.reshape(n, -1), bits, block_size),
        scales=scales,
    )


def concat_outputs(parts: list[Linear]) -> Linear:
    """Concatenate linears that share an input along their output features (Q, K, V)."""
    if all(isinstance(p, DenseLinear) for p in parts):
        return DenseLinear(np.concatenate([p.weight for p in parts], axis=1))
    if not all(isinstance(p, BlockLinear) for p in parts):
        raise ValueError("cannot concatenate dense and block-quantized weights")
    first = parts[0]
    if any(
        (p.bits, p.block_size, p.in_features) != (first.bits, first.block_size, first.in_features)
        or (p.correction is None) != (first.correction is None)
        for p in parts
    ):
        raise ValueError("cannot concatenate block weights of different formats")
    return BlockLinear(
        in_features=first.in_features,
        out_features=sum(p.out_features for p in parts),
        bits=first.bits,
        block_size=first.block_size,
        packed=np.concatenate([p.packed for p in parts], axis=0),
        scales=np.concatenate([p.scales for p in parts], axis=0),
        correction=None
        if first.correction is None
        else np.concatenate([p.correction for p in parts], axis=1),
    )


def quantize_weights(weights: DecoderWeights, bits: int = 8, block_size: int = 32) -> None:
    """Replace every dense projection (and the LM head) with a symmetric block-quantized one."""

    def q(lin: Linear) -> Linear:
        if isinstance(lin, DenseLinear):
            return quantize_symmetric(lin.weight, bits, block_size)
        return lin

    for layer in weights.layers:
        layer.qkv = q(layer.qkv)
        layer.o_proj = q(layer.o_proj)
        layer.gate_proj = q(layer.gate_proj)
        layer.up_proj = q(layer.up_proj)
        layer.down_proj = q(layer.down_proj)
    if weights.lm_head is not None:
        weights.lm_head = q(weights.lm_head)


# --------------------------------------------------------------------------------------
# Reading the Optimum export
# --------------------------------------------------------------------------------------

_OPTIMUM_MATMULS = {
    "q": "/model/layers.{i}/self_attn/q_proj/MatMul",
    "k": "/model/layers.{i}/self_attn/k_proj/MatMul",
    "v": "/model/layers.{i}/self_attn/v_proj/MatMul",
    "o": "/model/layers.{i}/self_attn/o_proj/MatMul",
    "gate": "/model/layers.{i}/mlp/gate_proj/MatMul",
    "up": "/model/layers.{i}/mlp/up_proj/MatMul",
    "down": "/model/layers.{i}/mlp/down_proj/MatMul",
}


def weights_from_optimum(model_path: Path, shape: DecoderShape) -> DecoderWeights:
    """Collect the fp32 weights of an Optimum ``text-generation-with-past`` export.

    Weights are found through the node names the PyTorch exporter derives from module paths
    (``/model/layers.N/self_attn/q_proj/MatMul``, ``/model/layers.N/input_layernorm/Mul_1``),
    not through initializer names, which the exporter renames and deduplicates (equal norm
    weights share one initializer). A graph that does not look like that is refused rather
    than guessed at.
    """
    model = onnx.load(str(model_path))
    inits = {t.name: t for t in model.graph.initializer}
    # Tied embeddings reach the LM head through a Transpose of the embedding initializer.
    transposed = {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if node.op_type == "Transpose" and node.input[0] in inits
    }
    node_weight: dict[str, tuple[str, bool]] = {}
    for node in model.graph.node:
        constant = [name for name in node.input if name in inits or name in transposed]
        if len(constant) == 1:
            name = constant[0]
            node_weight[node.name] = (transposed.get(name, name), name in transposed)

    def weight(node_name: str, expected: tuple[int, ...]) -> np.ndarray:
        if node_name not in node_weight:
            raise ValueError(f"{model_path}: node {node_name!r} not found; not an Optimum export")
        source, is_transposed = node_weight[node_name]
        w = numpy_helper.to_array(inits[source]).astype(np.float32, copy=False)
        w = w.T if is_transposed else w
        if w.shape != expected:
            raise ValueError(f"{model_path}: {node_name} has shape {w.shape}, not {expected}")
        return w

    def linear(node_name: str, k: int, n: int) -> DenseLinear:
        return DenseLinear(weight(node_name, (k, n)))

    h, kv = shape.hidden_size, shape.num_kv_heads * shape.head_dim
    q_out, inter = shape.num_heads * shape.head_dim, shape.intermediate_size
    weights = DecoderWeights(
        embed_tokens=weight("/model/embed_tokens/Gather", (shape.vocab_size, h))
    )
    for i in range(shape.num_layers):
        names = {key: pattern.format(i=i) for key, pattern in _OPTIMUM_MATMULS.items()}
        weights.layers.append(
            LayerWeights(
                attn_norm=weight(f"/model/layers.{i}/input_layernorm/Mul_1", (h,)),
                qkv=concat_outputs(
                    [
                        linear(names["q"], h, q_out),
                        linear(names["k"], h, kv),
                        linear(names["v"], h, kv),
                    ]
                ),
                o_proj=linear(names["o"], q_out, h),
                mlp_norm=weight(f"/model/layers.{i}/post_attention_layernorm/Mul_1", (h,)),
                gate_proj=linear(names["gate"], h, inter),
                up_proj=linear(names["up"], h, inter),
                down_proj=linear(names["down"], inter, h),
            )
        )
    weights.final_norm = weight("/model/norm/Mul_1", (h,))
    weights.lm_head = linear("/lm_head/MatMul", h, shape.vocab_size)
    return weights


# --------------------------------------------------------------------------------------
# Graph construction
# --------------------------------------------------------------------------------------


def rotary_caches(shape: DecoderShape, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin tables (max_length, head_dim/2) for rotate-half rotary embedding."""
    dim = shape.head_dim
    inv_freq = 1.0 / (shape.rope_theta ** (np.arange(0, dim, 2, dtype=np.int64) / dim))
    inv_freq = inv_freq.astype(np.float32)
    freqs = np.outer(np.arange(max_length, dtype=np.float32), inv_freq)
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


class _GraphBuilder:
    """Accumulates nodes and initializers with unique, readable names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._names: set[str] = set()
        self._block_sums: dict[tuple[str, int], str] = {}

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(
        self,
        op: str,
        inputs: list[str],
        name: str,
        n_outputs: int = 1,
        domain: str = "",
        **attrs: object,
    ) -> list[str]:
        assert name not in self._names, name
        self._names.add(name)
        outputs = [f"{name}/output_{i}" for i in range(n_outputs)]
        self.nodes.append(
            helper.make_node(op, inputs, outputs, name=name, domain=domain or None, **attrs)
        )
        return outputs

    def linear(self, lin: Linear, x: str, name: str, options: FusedOptions) -> str:
        """``x @ W`` for a dense or block-quantized weight, with the block-sum correction."""
        if isinstance(lin, DenseLinear):
            w = self.const(f"{name}.weight", lin.weight.astype(np.float32))
            return self.node("MatMul", [x, w], f"{name}/MatMul")[0]
        b = self.const(f"{name}.weight_q", lin.packed)
        s = self.const(f"{name}.scales", lin.scales.astype(np.float32))
        y = self.node(
            "MatMulNBits",
            [x, b, s],
            f"{name}/MatMulNBits",
            domain=MS_DOMAIN,
            K=lin.in_features,
            N=lin.out_features,
            bits=lin.bits,
            block_size=lin.block_size,
            accuracy_level=options.accuracy_level_for(lin.bits),
        )[0]
        if lin.correction is None:
            return y
        sums = self.block_sums(x, lin.in_features, lin.block_size, name)
        c = self.const(f"{name}.block_offsets", lin.correction.astype(np.float32))
        offset = self.node("MatMul", [sums, c], f"{name}/offset/MatMul")[0]
        return self.node("Add", [y, offset], f"{name}/offset/Add")[0]

    def skip_norm(self, x: str, residual: str, weight: str, name: str,
                  eps: float) -> tuple[str, str]:
        """RMSNorm of ``x + residual``; returns (normed, the new residual sum)."""
        outs = self.node("SkipSimplifiedLayerNormalization", [x, residual, weight], name,
                         n_outputs=4, domain=MS_DOMAIN, epsilon=eps)
        return outs[0], outs[3]

    def block_sums(self, x: str, k: int, block: int, name: str) -> str:
        """(…, K) → (…, K/block): the input summed over each quantization block, computed
        once per input however many projections read it."""
        if (x, block) in self._block_sums:
            return self._block_sums[(x, block)]
        shape = self.const(f"{name}.block_shape", np.array([0, 0, k // block, block], np.int64))
        blocks = self.node("Reshape", [x, shape], f"{name}/offset/Reshape")[0]
        axes = self.const(f"{name}.block_axes", np.array([-1], np.int64))
        sums = self.node("ReduceSum", [blocks, axes], f"{name}/offset/ReduceSum", keepdims=0)[0]
        self._block_sums[(x, block)] = sums
        return sums


@dataclass(frozen=True)
class FusedOptions:
    """Build options.

    ``max_length`` bounds positions (rotary cache rows) and so the KV buffers. The accuracy
    levels are ``MatMulNBits``'s: 0 computes in fp32 (exact), 4 quantizes activations to int8
    per block (like llama.cpp's own dot products) and is the fast path; 8-bit weights have no
    fast fp32 kernel on CPU (a 576×49152 LM head takes ~70× longer at level 0), so they get
    their own setting. ``fuse_gate_up`` runs the MLP's gate and up projections as one
    ``MatMulNBits`` (and one block-sum offset) followed by a ``Split``: fewer, larger kernels,
    measured ~5 % less CPU per decoded token on the default model.
    """

    max_length: int
    accuracy_level: int = 4
    accuracy_level_8bit: int = 4
    fuse_gate_up: bool = True

    def accuracy_level_for(self, bits: int) -> int:
        return self.accuracy_level_8bit if bits == 8 else self.accuracy_level


def build_fused_model(
    shape: DecoderShape, weights: DecoderWeights, options: FusedOptions
) -> onnx.ModelProto:
    """Assemble the fused decoder graph (interface in ``models/README.md``, "Fused layout")."""
    if len(weights.layers) != shape.num_layers or weights.lm_head is None:
        raise ValueError("decoder weights do not match the model shape")
    g = _GraphBuilder()
    n_kv = shape.num_kv_heads

    # Sequence bookkeeping for GroupQueryAttention, from the 2D attention mask.
    one = g.const("const.int64.1", np.array([1], np.int64))
    mask_sum = g.node("ReduceSum", ["attention_mask", one], "/mask/ReduceSum", keepdims=0)[0]
    seqlens = g.node("Sub", [mask_sum, one], "/mask/Sub")[0]
    seqlens_k = g.node("Cast", [seqlens], "/mask/seqlens_k", to=TensorProto.INT32)[0]
    mask_shape = g.node("Shape", ["attention_mask"], "/mask/Shape")[0]
    total = g.node(
        "Gather",
        [mask_shape, g.const("const.int64.1s", np.array(1, np.int64))],
        "/mask/Gather",
        axis=0,
    )[0]
    total_len = g.node("Cast", [total], "/mask/total_sequence_length", to=TensorProto.INT32)[0]

    cos, sin = rotary_caches(shape, options.max_length)
    cos_cache = g.const("cos_cache", cos)
    sin_cache = g.const("sin_cache", sin)

    embed = g.const("model.embed_tokens.weight", weights.embed_tokens.astype(np.float32))
    hidden = g.node("Gather", [embed, "input_ids"], "/model/embed_tokens/Gather")[0]

    residual = hidden
    pending: str | None = None  # output of the previous block, not yet added to the residual
    eps = shape.rms_norm_eps
    for i, layer in enumerate(weights.layers):
        base = f"/model/layers.{i}"
        norm_w = g.const(f"model.layers.{i}.input_layernorm.weight", layer.attn_norm)
        if pending is None:
            x = g.node(
                "SimplifiedLayerNormalization",
                [residual, norm_w],
                f"{base}/input_layernorm",
                axis=-1,
                epsilon=eps,
            )[0]
        else:
            x, residual = g.skip_norm(pending, residual, norm_w, f"{base}/input_layernorm", eps)
        qkv = g.linear(layer.qkv, x, f"model.layers.{i}.self_attn.qkv_proj", options)
        attn = g.node(
            "GroupQueryAttention",
            [
                qkv,
                "",
                "",
                f"past_key_values.{i}.key",
                f"past_key_values.{i}.value",
                seqlens_k,
                total_len,
                cos_cache,
                sin_cache,
            ],
            f"{base}/self_attn/GroupQueryAttention",
            n_outputs=3,
            domain=MS_DOMAIN,
            num_heads=shape.num_heads,
            kv_num_heads=n_kv,
            scale=1.0 / math.sqrt(shape.head_dim),
            do_rotary=1,
            rotary_interleaved=0,
        )
        # Rename the KV outputs to the graph's present names.
        g.nodes[-1].output[1] = f"present.{i}.key"
        g.nodes[-1].output[2] = f"present.{i}.value"
        attn_out = g.linear(layer.o_proj, attn[0], f"model.layers.{i}.self_attn.o_proj", options)

        mlp_w = g.const(f"model.layers.{i}.post_attention_layernorm.weight", layer.mlp_norm)
        x, residual = g.skip_norm(attn_out, residual, mlp_w, f"{base}/post_attention_layernorm",
                                  eps)
        if options.fuse_gate_up:
            gate_up = concat_outputs([layer.gate_proj, layer.up_proj])
            both = g.linear(gate_up, x, f"model.layers.{i}.mlp.gate_up_proj", options)
            inter = g.const(f"{base}/mlp/split", np.array([shape.intermediate_size] * 2, np.int64))
            gate, up = g.node("Split", [both, inter], f"{base}/mlp/Split", n_outputs=2, axis=-1)
        else:
            gate = g.linear(layer.gate_proj, x, f"model.layers.{i}.mlp.gate_proj", options)
            up = g.linear(layer.up_proj, x, f"model.layers.{i}.mlp.up_proj", options)
        sig = g.node("Sigmoid", [gate], f"{base}/mlp/Sigmoid")[0]
        silu = g.node("Mul", [gate, sig], f"{base}/mlp/SiLU")[0]
        act = g.node("Mul", [silu, up], f"{base}/mlp/Mul")[0]
        pending = g.linear(layer.down_proj, act, f"model.layers.{i}.mlp.down_proj", options)

    # Only the last position needs logits: slice before the final norm and the LM head.
    starts = g.const("const.slice.starts", np.array([-1], np.int64))
    ends = g.const("const.slice.ends", np.array([np.iinfo(np.int64).max], np.int64))
    axis1 = g.const("const.slice.axes", np.array([1], np.int64))
    last_out = g.node("Slice", [pending, starts, ends, axis1], "/model/last/Slice")[0]
    last_res = g.node("Slice", [residual, starts, ends, axis1], "/model/last/Slice_1")[0]
    final_w = g.const("model.norm.weight", weights.final_norm)
    normed = g.node(
        "SkipSimplifiedLayerNormalization",
        [last_out, last_res, final_w],
        "/model/norm",
        n_outputs=1,
        domain=MS_DOMAIN,
        epsilon=eps,
    )[0]
    logits = g.linear(weights.lm_head, normed, "lm_head", options)
    g.nodes[-1].output[0] = "logits"
    del logits

    kv_dims = ["batch_size", n_kv, "past_sequence_length", shape.head_dim]
    present_dims = ["batch_size", n_kv, "present_sequence_length", shape.head_dim]
    inputs = [
        helper.make_tensor_value_info(
            "input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]
        ),
        helper.make_tensor_value_info(
            "attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]
        ),
    ]
    outputs = [
        helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, ["batch_size", 1, shape.vocab_size]
        ),
    ]
    for i in range(shape.num_layers):
        for kind in ("key", "value"):
            inputs.append(
                helper.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}", TensorProto.FLOAT, kv_dims
                )
            )
            outputs.append(
                helper.make_tensor_value_info(
                    f"present.{i}.{kind}", TensorProto.FLOAT, present_dims
                )
            )
    graph = helper.make_graph(g.nodes, "fused_decoder", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="onnxchat",
    )
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            LAYOUT_KEY: "fused",
            MAX_LENGTH_KEY: str(options.max_length),
            SHARE_BUFFER_KEY: "true",
        },
    )
    return model


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Write the model as one file when it fits protobuf's 2 GiB limit, else with a data file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() < 2**31 - 2**20:
        onnx.save(model, str(path))
    else:
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
        )
