"""The fused decoder graph in fp16, for CUDA.

ONNX Runtime's CUDA ``GroupQueryAttention`` has fp16 and bf16 kernels only, so the fp32 fused
graph (``export/builders/``) cannot run its attention on the GPU. This pass rewrites a finished
fused graph, whatever family built it, into its fp16 twin instead of building a second graph:

* activations, the KV cache inputs and outputs, norm weights, rotary caches, ``MatMulNBits``
  scales and biases become fp16; ``MatMulNBits`` keeps the very same packed 4- or 8-bit
  blocks;
* large fp32 tensors are not converted but kept as they are, so the saved graph can point at
  the fp32 graph's own bytes (``export/shared_data.py``) instead of storing a second copy:
  a table read only by ``Gather`` (the token embedding) is gathered in fp32 and the few rows
  are cast to fp16; any other large one goes through a ``Cast`` that ONNX Runtime folds into
  an fp16 constant when it loads the graph;
* ``logits`` stay fp32 (one ``Cast`` of the last position's row), so callers see the same
  output as from the fp32 graph.

Norms compute in fp32 inside the kernels (their ``stash_type``), and so do the CUDA
``MatMulNBits`` and attention kernels (fp16 inputs, fp32 accumulation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.builders.base import LAYOUT_KEY

DTYPE_KEY = "onnxchat.dtype"
#: fp32 tensors from this size on stay fp32 and shared with the fp32 graph (see the module
#: docstring); smaller ones are converted and stored in the fp16 graph itself.
SHARE_BYTES = 1 << 20
FP16_MAX = float(np.finfo(np.float16).max)

# Operators whose float inputs and outputs share one type (or whose other float outputs
# the fused graphs leave unused), so turning every float tensor into fp16 keeps them valid.
# Anything else is refused rather than guessed at.
_SAME_TYPE_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Neg", "Sigmoid", "Tanh", "Softmax", "Erf", "Pow", "Sqrt",
    "MatMul", "Gather", "Reshape", "Split", "Slice", "Concat", "Transpose", "Squeeze",
    "Unsqueeze", "Shape", "Cast", "ReduceSum", "Where", "Equal", "Identity",
    "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization", "MatMulNBits",
    "GroupQueryAttention", "Gelu", "FastGelu", "QuickGelu", "RotaryEmbedding",
})


def is_fused(model: onnx.ModelProto) -> bool:
    """Whether ``model`` carries the fused layout's metadata (``export/builders/``)."""
    return any(p.key == LAYOUT_KEY and p.value == "fused" for p in model.metadata_props)


def to_fp16(model: onnx.ModelProto, share_bytes: int = SHARE_BYTES,
            base_dir: Path | None = None) -> onnx.ModelProto:
    """Return the fp16 twin of the fused fp32 graph ``model`` (which is left unchanged).
    ``base_dir``: where the files of tensors ``model`` stores outside itself are (saving a
    graph over 2 GB moves its tensors out, in memory too).

    Raises :class:`ValueError` for a graph this pass does not know how to convert: not the
    fused layout, an operator outside the known set, or a weight beyond fp16's range.
    """
    if not is_fused(model):
        raise ValueError("only the fused layout has a CUDA fp16 graph")
    unknown = sorted({n.op_type for n in model.graph.node} - _SAME_TYPE_OPS)
    if unknown:
        raise ValueError(f"the fp16 pass does not know the operator {unknown[0]}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    prologue: list[onnx.NodeProto] = []  # casts of shared initializers, run first
    after: dict[str, onnx.NodeProto] = {}  # fp32 rows a Gather made -> their cast to fp16
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        users = consumers.get(init.name, [])
        nbytes = int(np.prod(init.dims, dtype=np.int64)) * 4
        if nbytes < share_bytes:
            _convert_initializer(init, base_dir)
        elif users and all(u.op_type == "Gather" and u.input[0] == init.name for u in users):
            for user in users:
                wanted = user.output[0]
                user.output[0] = f"{wanted}_fp32"
                after[user.output[0]] = _cast(user.output[0], wanted, TensorProto.FLOAT16)
        else:
            fp16_name = f"{init.name}_fp16"
            prologue.append(_cast(init.name, fp16_name, TensorProto.FLOAT16))
            for user in users:
                user.input[:] = [fp16_name if n == init.name else n for n in user.input]

    nodes = list(prologue)
    for node in graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
        if node.op_type == "MatMulNBits":
            # Accuracy level 4 quantizes activations to int8 on the CPU; the CUDA kernel
            # ignores it. 0 says what this graph does: compute from fp16 activations.
            for attr in node.attribute:
                if attr.name == "accuracy_level":
                    attr.i = 0
        node.output[:] = ["logits_fp16" if n == "logits" else n for n in node.output]
        nodes.append(node)
        if node.output and node.output[0] in after:
            nodes.append(after[node.output[0]])
    nodes.append(_cast("logits_fp16", "logits", TensorProto.FLOAT))
    copies = [onnx.NodeProto() for _ in nodes]
    for copy, node in zip(copies, nodes, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)

    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT and value.name != "logits":
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]
    props = {p.key: p.value for p in out.metadata_props}
    props[DTYPE_KEY] = "float16"
    helper.set_model_props(out, props)
    return out


def _cast(source: str, target: str, to: int) -> onnx.NodeProto:
    return helper.make_node("Cast", [source], [target], name=f"{target}/Cast", to=to)


def _convert_initializer(init: TensorProto, base_dir: Path | None) -> None:
    array = numpy_helper.to_array(init, str(base_dir or ""))
    if array.size and float(np.abs(array).max()) > FP16_MAX:
        raise ValueError(f"the weight {init.name} exceeds fp16's range")
    init.CopyFrom(numpy_helper.from_array(array.astype(np.float16), init.name))
