"""The base fused-decoder builder: a Llama-style decoder as a compact graph of ONNX Runtime
contrib ops, with the hooks each family overrides (see the per-family files).

The plain Optimum export runs attention, rotary embedding and RMSNorm as hundreds of small
ops per layer and concatenates the KV cache on every step; on a small model that per-step
overhead, not the weights, bounds decode speed. The fused graph has

* ``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` for RMSNorm and
  the residual adds,
* one packed Q/K/V projection feeding ``GroupQueryAttention`` with rotary embedding from
  cos/sin caches (``do_rotary=1``), which reads and writes the KV cache in place when past
  and present are bound to the same buffer,
* block-quantized ``MatMulNBits`` (or fp32 ``MatMul``) for every projection and the LM head,
* logits for the last position only.

The weights come from the source's own tensors by their Hugging Face names
(:class:`~export.builders.weights.SourceTensors`), and every tensor must be placed. The layout
is documented in ``models/README.md`` under "Fused layout".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import onnx
from onnx import TensorProto, helper

from export.builders.graph import MS_DOMAIN, GraphBuilder
from export.builders.rope import Rope
from export.builders.weights import (
    DecoderWeights,
    DenseLinear,
    LayerWeights,
    Linear,
    SourceTensors,
    UnplacedTensorError,
    concat_outputs,
    scale_outputs,
)
from export.external_data import ExternalData

OPSET = 17
# Model metadata a fused graph carries, so whoever writes the manifest reads it off the graph.
LAYOUT_KEY = "onnxchat.layout"
MAX_LENGTH_KEY = "onnxchat.max_length"
SHARE_BUFFER_KEY = "onnxchat.past_present_share_buffer"
SLIDING = "sliding_attention"


class NotFusableError(ValueError):
    """The fused layout cannot express this model; the message says why in one clause."""


@dataclass(frozen=True)
class DecoderShape:
    """What the fused graph needs to know about a decoder, read from its config by the
    family's builder (:meth:`DecoderBuilder.read_config`); defaults are Llama's."""

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
    model_type: str = "llama"
    #: the rotary table of full-attention layers; None: plain rope of ``rope_theta``
    rope: Rope | None = None
    #: the sliding-window layers' own table (Gemma 3's local base frequency)
    local_rope: Rope | None = None
    sliding_window: int | None = None
    sliding_layers: tuple[int, ...] = ()
    tie_word_embeddings: bool = True
    hidden_act: str = "silu"
    #: softmax scale of attention; None: 1/sqrt(head_dim)
    attention_scale: float | None = None
    attn_softcap: float = 0.0
    final_softcap: float = 0.0
    embedding_scale: float = 1.0
    #: multiplies each block's output before the residual add (Granite); folded into the
    #: output projections when the weights are placed
    residual_scale: float = 1.0
    #: multiplies the logits (Granite's 1 / logits_scaling); folded into the LM head
    logits_scale: float = 1.0

    @property
    def rotary(self) -> Rope:
        return self.rope or Rope(self.rope_theta, self.head_dim,
                                 max_position_embeddings=self.context_length)

    def rope_for_layer(self, index: int) -> Rope:
        if self.local_rope is not None and index in self.sliding_layers:
            return self.local_rope
        return self.rotary


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


#: What the builder applies to each projection as it is placed (quantization), so a large
#: model's fp32 weights are never all held at once.
Transform = Callable[[Linear], Linear]


@dataclass
class _Context:
    """Graph-wide values every layer reads."""

    seqlens_k: str
    total_len: str
    max_length: int
    tables: dict[Rope, tuple[str, str]] = field(default_factory=dict)


class StreamedWeights:
    """A decoder's weights placed from the source when read, in the order :meth:`DecoderBuilder.
    build` reads them: the embedding, each layer once (an iterator), the final norm, then the
    LM head, which also checks that every source tensor was placed. Nothing is kept once
    read except a tied embedding the LM head still needs."""

    def __init__(self, builder: DecoderBuilder, source: SourceTensors,
                 transform: Transform | None, lm_head_transform: Transform | None) -> None:
        self._builder = builder
        self._source = source
        self._transform: Transform = transform or (lambda lin: lin)
        self._head_transform = lm_head_transform or self._transform
        self._embed: np.ndarray | None = None

    @property
    def embed_tokens(self) -> np.ndarray:
        s = self._builder.shape
        embed = self._builder.array(self._source, "model.embed_tokens.weight",
                                    (s.vocab_size, s.hidden_size))
        if "lm_head.weight" not in self._source:
            self._embed = embed
        return embed

    @property
    def layers(self) -> Iterator[LayerWeights]:
        for i in range(self._builder.shape.num_layers):
            yield self._builder.place_layer(self._source, i, self._transform)

    @property
    def final_norm(self) -> np.ndarray:
        return self._builder.norm(self._source, "model.norm.weight",
                                  self._builder.shape.hidden_size)

    @property
    def lm_head(self) -> Linear:
        embed, self._embed = self._embed, None
        return self._builder.finish_placing(self._source, embed, self._head_transform)


class DecoderBuilder:
    """The Llama decoder (also SmolLM): pre-norm RMSNorm, rotary GQA, SiLU-gated MLP.

    A family subclass overrides only what differs from this: how its config reads
    (:meth:`read_config`, :meth:`sliding_layers`, :meth:`activation_name`), where its tensors
    go (:meth:`layer_weights`, :meth:`qkv`, :meth:`mlp_weights`), and the graph pieces where
    its computation differs (:meth:`qk_norm`); the optional norms of :class:`LayerWeights`
    (post-norms, QK-norms) switch the rest of the layer on.
    """

    model_type: ClassVar[str] = "llama"
    #: added to every RMSNorm weight (Gemma's ``x · (1 + w)``)
    norm_offset: ClassVar[float] = 0.0
    hidden_acts: ClassVar[frozenset[str]] = frozenset({"silu"})

    def __init__(self, shape: DecoderShape) -> None:
        self.shape = shape

    # ---------------------------------------------------------------------------------
    # Config
    # ---------------------------------------------------------------------------------

    @classmethod
    def read_config(cls, config: dict) -> DecoderShape:
        """Read a config dict (transformers' ``config.to_dict()``, every default filled in);
        refuse with :class:`NotFusableError` what the fused graph cannot express."""
        act = cls.activation_name(config)
        if act not in cls.hidden_acts:
            raise NotFusableError(f"the fused layout has no {act!r} activation for "
                                  f"{config.get('model_type')} models")
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or hidden // heads)
        rotary_dim = int(head_dim * float(config.get("partial_rotary_factor") or 1.0))
        if rotary_dim % 16:
            # GroupQueryAttention's cos/sin caches need a multiple of 8 columns.
            raise NotFusableError(f"GroupQueryAttention cannot rotate {rotary_dim} features per "
                                  "head (a multiple of 16 is needed)")
        rope = Rope.from_config(config, rotary_dim)
        try:
            rope.check()
        except ValueError as exc:
            raise NotFusableError(str(exc)) from None
        window = config.get("sliding_window")
        sliding = cls.sliding_layers(config) if window else ()
        return DecoderShape(
            num_layers=int(config["num_hidden_layers"]),
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=rope.theta,
            context_length=int(config.get("max_position_embeddings", 2048)),
            model_type=cls.model_type,
            rope=rope,
            sliding_window=int(window) if sliding else None,
            sliding_layers=sliding,
            tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
            hidden_act=act,
        )

    @classmethod
    def activation_name(cls, config: dict) -> str:
        return str(config.get("hidden_act", "silu"))

    @classmethod
    def sliding_layers(cls, config: dict) -> tuple[int, ...]:
        """Layers that attend within ``sliding_window`` only, from transformers' per-layer
        ``layer_types``."""
        types = config.get("layer_types") or ()
        return tuple(i for i, kind in enumerate(types) if kind == SLIDING)

    # ---------------------------------------------------------------------------------
    # Weights
    # ---------------------------------------------------------------------------------

    def weights_from(self, source: SourceTensors, transform: Transform | None = None,
                     lm_head_transform: Transform | None = None) -> DecoderWeights:
        """Place every source tensor; ``transform`` (quantization) runs on each projection as
        soon as its layer is complete, ``lm_head_transform`` (default: the same) on the LM
        head. Refuses a tensor it cannot place."""
        streamed = self.streamed_weights(source, transform, lm_head_transform)
        weights = DecoderWeights(embed_tokens=streamed.embed_tokens)
        weights.layers = list(streamed.layers)
        weights.final_norm = streamed.final_norm
        weights.lm_head = streamed.lm_head
        return weights

    def streamed_weights(self, source: SourceTensors, transform: Transform | None = None,
                         lm_head_transform: Transform | None = None) -> StreamedWeights:
        """The same weights as :meth:`weights_from`, placed only when :meth:`build` reads
        them, part by part: with an external data store the graph is built holding one layer
        at a time, never the whole model."""
        return StreamedWeights(self, source, transform, lm_head_transform)

    def place_layer(self, source: SourceTensors, i: int, transform: Transform) -> LayerWeights:
        """Layer ``i``'s tensors, the residual multiplier folded in, each projection
        transformed."""
        s = self.shape
        layer = self.layer_weights(source, f"model.layers.{i}.")
        layer.o_proj = scale_outputs(layer.o_proj, s.residual_scale)
        layer.down_proj = scale_outputs(layer.down_proj, s.residual_scale)
        for name in ("qkv", "o_proj", "gate_proj", "up_proj", "down_proj"):
            setattr(layer, name, transform(getattr(layer, name)))
        return layer

    def finish_placing(self, source: SourceTensors, embed: np.ndarray | None,
                       transform: Transform) -> Linear:
        """The LM head (the tied embedding's transpose when the source has none), then the
        check that every source tensor found a place."""
        head = scale_outputs(self.lm_head(source, embed), self.shape.logits_scale)
        head = transform(head)
        source.ignore(r".*rotary_emb\.inv_freq",
                      "rotary frequencies are recomputed from the config")
        source.check_all_placed()
        return head

    def layer_weights(self, source: SourceTensors, p: str) -> LayerWeights:
        """One layer's tensors, Llama names: pre-attention and pre-MLP norms."""
        s = self.shape
        h = s.hidden_size
        return LayerWeights(
            attn_norm=self.norm(source, p + "input_layernorm.weight", h),
            qkv=self.qkv(source, p),
            o_proj=self.linear(source, p + "self_attn.o_proj", s.num_heads * s.head_dim, h),
            mlp_norm=self.norm(source, p + "post_attention_layernorm.weight", h),
            **self.mlp_weights(source, p),
        )

    def qkv(self, source: SourceTensors, p: str) -> Linear:
        """Separate Q, K and V projections (with their biases, if any), packed."""
        s = self.shape
        q_out, kv_out = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        return concat_outputs([
            self.linear(source, p + "self_attn.q_proj", s.hidden_size, q_out),
            self.linear(source, p + "self_attn.k_proj", s.hidden_size, kv_out),
            self.linear(source, p + "self_attn.v_proj", s.hidden_size, kv_out),
        ])

    def mlp_weights(self, source: SourceTensors, p: str) -> dict[str, Linear]:
        s = self.shape
        h, inter = s.hidden_size, s.intermediate_size
        return {
            "gate_proj": self.linear(source, p + "mlp.gate_proj", h, inter),
            "up_proj": self.linear(source, p + "mlp.up_proj", h, inter),
            "down_proj": self.linear(source, p + "mlp.down_proj", inter, h),
        }

    def lm_head(self, source: SourceTensors, embed: np.ndarray | None) -> Linear:
        s = self.shape
        if "lm_head.weight" in source:
            return self.linear(source, "lm_head", s.hidden_size, s.vocab_size)
        if not s.tie_word_embeddings or embed is None:
            raise UnplacedTensorError(
                f"{source.origin}: lm_head.weight is missing and the embeddings are not tied")
        return DenseLinear(np.ascontiguousarray(embed.T))

    def array(self, source: SourceTensors, name: str, shape: tuple[int, ...]) -> np.ndarray:
        value = source.take(name)
        if not isinstance(value, np.ndarray) or value.shape != shape:
            got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
            raise UnplacedTensorError(f"{source.origin}: {name} is {got}, expected {shape}")
        return value.astype(np.float32, copy=False)

    def norm(self, source: SourceTensors, name: str, size: int) -> np.ndarray:
        """An RMSNorm weight as the multiplier the graph applies."""
        weight = self.array(source, name, (size,))
        return (weight + np.float32(self.norm_offset)).astype(np.float32)

    def linear(self, source: SourceTensors, name: str, k: int, n: int) -> Linear:
        """``name.weight`` ((out, in) rows, or a ready (K, N) projection) and ``name.bias``."""
        value = source.take(name + ".weight")
        lin = DenseLinear(np.ascontiguousarray(value.T, dtype=np.float32)) if isinstance(
            value, np.ndarray) else value
        if lin.shape != (k, n):
            raise UnplacedTensorError(
                f"{source.origin}: {name}.weight has shape {lin.shape} (K, N), expected {(k, n)}")
        bias = source.take_optional(name + ".bias")
        if bias is not None:
            if not isinstance(bias, np.ndarray) or bias.shape != (n,):
                raise UnplacedTensorError(f"{source.origin}: {name}.bias is not ({n},)")
            lin = replace(lin, bias=bias.astype(np.float32))
        return lin

    # ---------------------------------------------------------------------------------
    # Graph
    # ---------------------------------------------------------------------------------

    def max_length(self, wanted: int) -> int:
        """Positions the graph supports: ``wanted``, unless a rotary table is faithful for
        fewer."""
        s = self.shape
        ropes = {s.rope_for_layer(i) for i in range(s.num_layers)}
        return min(rope.max_length(wanted) for rope in ropes)

    def build(self, weights: DecoderWeights | StreamedWeights, options: FusedOptions,
              store: ExternalData | None = None) -> onnx.ModelProto:
        """Assemble the fused decoder graph (interface in ``models/README.md``, "Fused
        layout"); with ``store``, its large initializers are written to that external data
        file as they are made."""
        s = self.shape
        if isinstance(weights, DecoderWeights) and (
                len(weights.layers) != s.num_layers or weights.lm_head is None):
            raise ValueError("decoder weights do not match the model shape")
        g = GraphBuilder(options.accuracy_level, options.accuracy_level_8bit, store)
        ctx = self._mask_inputs(g, self.max_length(options.max_length))

        embed = g.const("model.embed_tokens.weight", weights.embed_tokens.astype(np.float32))
        hidden = g.node("Gather", [embed, "input_ids"], "/model/embed_tokens/Gather")[0]
        hidden = g.scale(hidden, s.embedding_scale, "/model/embed_tokens/Scale")

        residual, pending = hidden, None
        for i, layer in enumerate(weights.layers):
            residual, pending = self.layer(g, i, layer, residual, pending, ctx, options)

        # Only the last position needs logits: slice before the final norm and the LM head.
        starts = g.const("const.slice.starts", np.array([-1], np.int64))
        ends = g.const("const.slice.ends", np.array([np.iinfo(np.int64).max], np.int64))
        axis1 = g.const("const.slice.axes", np.array([1], np.int64))
        final_norm = weights.final_norm
        assert pending is not None and final_norm is not None
        last_out = g.node("Slice", [pending, starts, ends, axis1], "/model/last/Slice")[0]
        last_res = g.node("Slice", [residual, starts, ends, axis1], "/model/last/Slice_1")[0]
        final_w = g.const("model.norm.weight", final_norm)
        normed = g.node(
            "SkipSimplifiedLayerNormalization",
            [last_out, last_res, final_w],
            "/model/norm",
            n_outputs=1,
            domain=MS_DOMAIN,
            epsilon=s.rms_norm_eps,
        )[0]
        lm_head = weights.lm_head
        assert lm_head is not None
        logits = g.linear(lm_head, normed, "lm_head")
        g.softcap(logits, s.final_softcap, "/lm_head/softcap")
        g.rename_output(0, "logits")
        return self._model(g, ctx.max_length)

    def layer(self, g: GraphBuilder, i: int, layer: LayerWeights, residual: str,
              pending: str | None, ctx: _Context, options: FusedOptions) -> tuple[str, str]:
        """One decoder layer. ``pending`` is the previous block's output, not yet added to the
        ``residual`` stream (the add is fused into the next norm). Returns both, updated."""
        eps = self.shape.rms_norm_eps
        x, residual = self.pre_norm(g, layer.attn_norm, pending, residual, i, "input_layernorm")
        out = self.attention(g, i, layer, x, ctx)
        if layer.post_attn_norm is not None:
            out = g.rms_norm(out, layer.post_attn_norm, f"/model/layers.{i}/post_attention_norm",
                             eps, f"model.layers.{i}.post_attention_norm.weight")
        x, residual = self.pre_norm(g, layer.mlp_norm, out, residual, i,
                                    "post_attention_layernorm")
        out = self.mlp(g, i, layer, x, options)
        if layer.post_mlp_norm is not None:
            out = g.rms_norm(out, layer.post_mlp_norm, f"/model/layers.{i}/post_feedforward_norm",
                             eps, f"model.layers.{i}.post_feedforward_norm.weight")
        return residual, out

    def pre_norm(self, g: GraphBuilder, weight: np.ndarray | None, pending: str | None,
                 residual: str, i: int, role: str) -> tuple[str, str]:
        """(input of the next block, residual stream): the norm of ``pending + residual``, or
        that sum itself for a family without pre-norms."""
        eps = self.shape.rms_norm_eps
        name, weight_name = f"/model/layers.{i}/{role}", f"model.layers.{i}.{role}.weight"
        if weight is None:
            if pending is not None:
                residual = g.node("Add", [pending, residual], f"{name}/Add")[0]
            return residual, residual
        if pending is None:
            return g.rms_norm(residual, weight, name, eps, weight_name), residual
        return g.skip_norm(pending, residual, weight, name, eps, weight_name)

    def attention(self, g: GraphBuilder, i: int, layer: LayerWeights, x: str,
                  ctx: _Context) -> str:
        s = self.shape
        base = f"/model/layers.{i}/self_attn"
        qkv = g.linear(layer.qkv, x, f"model.layers.{i}.self_attn.qkv_proj")
        if layer.q_norm is None and layer.k_norm is None:
            qkv_inputs = [qkv, "", ""]
        else:
            q_size, kv_size = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
            sizes = g.const(f"{base}/qkv_sizes", np.array([q_size, kv_size, kv_size], np.int64))
            q, k, v = g.node("Split", [qkv, sizes], f"{base}/qkv/Split", n_outputs=3, axis=-1)
            q = self.qk_norm(g, q, layer.q_norm, s.num_heads, f"{base}/q_norm")
            k = self.qk_norm(g, k, layer.k_norm, s.num_kv_heads, f"{base}/k_norm")
            qkv_inputs = [q, k, v]
        cos, sin = self._tables(g, s.rope_for_layer(i), ctx)
        attrs: dict[str, object] = {}
        if i in s.sliding_layers and s.sliding_window:
            # Both let a token see the ``sliding_window`` keys ending at itself (checked
            # against transformers' mask in the family tests).
            attrs["local_window_size"] = s.sliding_window
        if s.attn_softcap:
            attrs["softcap"] = float(s.attn_softcap)
        g.node(
            "GroupQueryAttention",
            [*qkv_inputs, f"past_key_values.{i}.key", f"past_key_values.{i}.value",
             ctx.seqlens_k, ctx.total_len, cos, sin],
            f"{base}/GroupQueryAttention",
            n_outputs=3,
            domain=MS_DOMAIN,
            num_heads=s.num_heads,
            kv_num_heads=s.num_kv_heads,
            scale=s.attention_scale if s.attention_scale is not None else 1.0 / math.sqrt(
                s.head_dim),
            do_rotary=1,
            rotary_interleaved=0,
            **attrs,
        )
        attn = g.nodes[-1].output[0]
        g.rename_output(1, f"present.{i}.key")
        g.rename_output(2, f"present.{i}.value")
        return g.linear(layer.o_proj, attn, f"model.layers.{i}.self_attn.o_proj")

    def qk_norm(self, g: GraphBuilder, x: str, weight: np.ndarray | None, heads: int,
                name: str) -> str:
        """RMSNorm of each head of Q or K before the rotary embedding (Qwen 3, Gemma 3)."""
        if weight is None:
            return x
        per_head = g.const(f"{name}/heads_shape",
                           np.array([0, 0, heads, self.shape.head_dim], np.int64))
        flat = g.const(f"{name}/flat_shape", np.array([0, 0, heads * self.shape.head_dim],
                                                      np.int64))
        y = g.node("Reshape", [x, per_head], f"{name}/Reshape")[0]
        y = g.rms_norm(y, weight, name, self.shape.rms_norm_eps, self.qk_norm_name(name))
        return g.node("Reshape", [y, flat], f"{name}/Reshape_1")[0]

    @staticmethod
    def qk_norm_name(name: str) -> str:
        """``/model/layers.3/self_attn/q_norm`` → ``model.layers.3.self_attn.q_norm.weight``."""
        return name.strip("/").replace("/", ".") + ".weight"

    def mlp(self, g: GraphBuilder, i: int, layer: LayerWeights, x: str,
            options: FusedOptions) -> str:
        base = f"/model/layers.{i}/mlp"
        name = f"model.layers.{i}.mlp"
        if options.fuse_gate_up:
            gate_up = concat_outputs([layer.gate_proj, layer.up_proj])
            both = g.linear(gate_up, x, f"{name}.gate_up_proj")
            sizes = g.const(f"{base}/split",
                            np.array([self.shape.intermediate_size] * 2, np.int64))
            gate, up = g.node("Split", [both, sizes], f"{base}/Split", n_outputs=2, axis=-1)
        else:
            gate = g.linear(layer.gate_proj, x, f"{name}.gate_proj")
            up = g.linear(layer.up_proj, x, f"{name}.up_proj")
        if self.shape.hidden_act == "silu":
            sig = g.node("Sigmoid", [gate], f"{base}/Sigmoid")[0]
            act = g.node("Mul", [gate, sig], f"{base}/SiLU")[0]
        else:  # gelu_pytorch_tanh, checked by read_config
            act = g.node("FastGelu", [gate], f"{base}/FastGelu", domain=MS_DOMAIN)[0]
        product = g.node("Mul", [act, up], f"{base}/Mul")[0]
        return g.linear(layer.down_proj, product, f"{name}.down_proj")

    def _mask_inputs(self, g: GraphBuilder, max_length: int) -> _Context:
        """Sequence bookkeeping for GroupQueryAttention, from the 2D attention mask."""
        one = g.const("const.int64.1", np.array([1], np.int64))
        mask_sum = g.node("ReduceSum", ["attention_mask", one], "/mask/ReduceSum",
                          keepdims=0)[0]
        seqlens = g.node("Sub", [mask_sum, one], "/mask/Sub")[0]
        seqlens_k = g.node("Cast", [seqlens], "/mask/seqlens_k", to=TensorProto.INT32)[0]
        mask_shape = g.node("Shape", ["attention_mask"], "/mask/Shape")[0]
        total = g.node(
            "Gather",
            [mask_shape, g.const("const.int64.1s", np.array(1, np.int64))],
            "/mask/Gather",
            axis=0,
        )[0]
        total_len = g.node("Cast", [total], "/mask/total_sequence_length",
                           to=TensorProto.INT32)[0]
        return _Context(seqlens_k, total_len, max_length)

    def _tables(self, g: GraphBuilder, rope: Rope, ctx: _Context) -> tuple[str, str]:
        """The cos/sin cache initializers of ``rope``, made once however many layers use it."""
        if rope not in ctx.tables:
            suffix = "" if not ctx.tables else f"_{len(ctx.tables)}"
            cos, sin = rope.tables(ctx.max_length)
            ctx.tables[rope] = (g.const(f"cos_cache{suffix}", cos),
                                g.const(f"sin_cache{suffix}", sin))
        return ctx.tables[rope]

    def _model(self, g: GraphBuilder, max_length: int) -> onnx.ModelProto:
        s = self.shape
        kv_dims = ["batch_size", s.num_kv_heads, "past_sequence_length", s.head_dim]
        present_dims = ["batch_size", s.num_kv_heads, "present_sequence_length", s.head_dim]
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
                "logits", TensorProto.FLOAT, ["batch_size", 1, s.vocab_size]
            ),
        ]
        for i in range(s.num_layers):
            for kind in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}", TensorProto.FLOAT, kv_dims))
                outputs.append(helper.make_tensor_value_info(
                    f"present.{i}.{kind}", TensorProto.FLOAT, present_dims))
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
                MAX_LENGTH_KEY: str(max_length),
                SHARE_BUFFER_KEY: "true",
            },
        )
        return model
