"""Node-level helpers of the fused graph: named constants, contrib-op nodes, projections."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.builders.weights import DenseLinear, Linear
from export.external_data import ExternalData

MS_DOMAIN = "com.microsoft"


class GraphBuilder:
    """Accumulates nodes and initializers with unique, readable names.

    ``accuracy_level`` and ``accuracy_level_8bit`` are ``MatMulNBits``'s settings for 4-bit
    and 8-bit weights (see :class:`export.builders.base.FusedOptions`). With ``store`` each
    large initializer goes to that external data file as it is made, and the graph keeps
    only its place (``export/external_data.py``).
    """

    def __init__(self, accuracy_level: int = 4, accuracy_level_8bit: int = 4,
                 store: ExternalData | None = None) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._names: set[str] = set()
        self._block_sums: dict[tuple[str, int], str] = {}
        self._scalars: dict[tuple[str, float], str] = {}
        self.accuracy_level = accuracy_level
        self.accuracy_level_8bit = accuracy_level_8bit
        self.store = store

    def const(self, name: str, array: np.ndarray) -> str:
        if self.store is not None:
            self.initializers.append(self.store.tensor(name, array))
        else:
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, value: float) -> str:
        """A float32 scalar constant, shared by every node that multiplies by it."""
        key = ("float", float(value))
        if key not in self._scalars:
            self._scalars[key] = self.const(f"const.float.{len(self._scalars)}",
                                            np.array(value, np.float32))
        return self._scalars[key]

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

    def rename_output(self, index: int, name: str) -> None:
        """Give the last node's output ``index`` a graph-level name (``logits``, ``present``)."""
        self.nodes[-1].output[index] = name

    def linear(self, lin: Linear, x: str, name: str) -> str:
        """``x @ W + b`` for a dense or block-quantized weight, with the block-sum correction."""
        if isinstance(lin, DenseLinear):
            w = self.const(f"{name}.weight", lin.weight.astype(np.float32))
            y = self.node("MatMul", [x, w], f"{name}/MatMul")[0]
        else:
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
                accuracy_level=self.accuracy_level_8bit if lin.bits == 8 else self.accuracy_level,
            )[0]
            if lin.correction is not None:
                sums = self.block_sums(x, lin.in_features, lin.block_size, name)
                c = self.const(f"{name}.block_offsets", lin.correction.astype(np.float32))
                offset = self.node("MatMul", [sums, c], f"{name}/offset/MatMul")[0]
                y = self.node("Add", [y, offset], f"{name}/offset/Add")[0]
        if lin.bias is not None:
            bias = self.const(f"{name}.bias", lin.bias.astype(np.float32))
            y = self.node("Add", [y, bias], f"{name}/BiasAdd")[0]
        return y

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

    def rms_norm(self, x: str, weight: np.ndarray, name: str, eps: float,
                 weight_name: str) -> str:
        """RMSNorm over the last axis with the effective multiplier ``weight``."""
        w = self.const(weight_name, weight.astype(np.float32))
        return self.node("SimplifiedLayerNormalization", [x, w], name, axis=-1, epsilon=eps)[0]

    def skip_norm(self, x: str, residual: str, weight: np.ndarray, name: str,
                  eps: float, weight_name: str) -> tuple[str, str]:
        """RMSNorm of ``x + residual``; returns (normed, the new residual sum)."""
        w = self.const(weight_name, weight.astype(np.float32))
        outs = self.node("SkipSimplifiedLayerNormalization", [x, residual, w], name,
                         n_outputs=4, domain=MS_DOMAIN, epsilon=eps)
        return outs[0], outs[3]

    def scale(self, x: str, factor: float, name: str) -> str:
        """``x · factor``; nothing when the factor is one."""
        if factor == 1.0:
            return x
        return self.node("Mul", [x, self.scalar(factor)], name)[0]

    def softcap(self, x: str, cap: float, name: str) -> str:
        """``cap · tanh(x / cap)`` (Gemma 2's logit soft-capping); nothing when ``cap`` is 0."""
        if not cap:
            return x
        scaled = self.node("Div", [x, self.scalar(cap)], f"{name}/Div")[0]
        capped = self.node("Tanh", [scaled], f"{name}/Tanh")[0]
        return self.node("Mul", [capped, self.scalar(cap)], f"{name}/Mul")[0]
