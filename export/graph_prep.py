"""Graph rewrites that let weight-only quantization reach every weight.

``MatMulNBits`` quantization only rewrites ``MatMul`` nodes whose weight is an initializer.
GPT-2 family exports hide most weights from it: its ``Conv1D`` layers become
``Gemm(x, W, b)`` and its tied LM head multiplies by ``Transpose(wte)`` computed at run time.
Rewriting those into ``MatMul`` (+ ``Add``) with a constant weight changes no result and lets
the 8-bit recipe quantize them; Llama-family exports already use plain ``MatMul``.
"""

from __future__ import annotations

from typing import Any


def _attribute(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def fold_weight_transposes(model: Any) -> int:
    """Replace ``Transpose(initializer)`` feeding a ``MatMul`` by a transposed initializer."""
    from onnx import numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    folded = 0
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.input[0] not in initializers:
            continue
        users = consumers.get(node.output[0], [])
        if not users or any(u.op_type != "MatMul" or u.input[1] != node.output[0] for u in users):
            continue
        weight = numpy_helper.to_array(initializers[node.input[0]])
        perm = _attribute(node, "perm", None)
        folded_weight = weight.transpose(perm) if perm else weight.T
        graph.initializer.append(numpy_helper.from_array(folded_weight.copy(), node.output[0]))
        graph.node.remove(node)
        folded += 1
    return folded


def gemm_to_matmul(model: Any) -> int:
    """Rewrite ``Gemm(A, B, C)`` with a constant ``B`` (alpha = beta = 1, no transposed A)
    as ``MatMul(A, B)`` followed by ``Add(C)``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    rewritten = 0
    nodes = list(graph.node)
    for node in nodes:
        if node.op_type != "Gemm" or node.input[1] not in initializers:
            continue
        if _attribute(node, "alpha", 1.0) != 1.0 or _attribute(node, "beta", 1.0) != 1.0:
            continue
        if _attribute(node, "transA", 0):
            continue
        weight_name = node.input[1]
        if _attribute(node, "transB", 0):
            original = initializers[weight_name]
            weight = numpy_helper.to_array(original).T.copy()
            weight_name = f"{weight_name}_transposed_for_matmul"
            graph.initializer.append(numpy_helper.from_array(weight, weight_name))
            if not any(original.name in other.input for other in graph.node if other is not node):
                graph.initializer.remove(original)
        index = list(graph.node).index(node)
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        replacement = [
            helper.make_node("MatMul", [node.input[0], weight_name], [product],
                             name=f"{node.name}_MatMul")
        ]
        if has_bias:
            replacement.append(
                helper.make_node("Add", [product, node.input[2]], [node.output[0]],
                                 name=f"{node.name}_Add")
            )
        graph.node.remove(node)
        for offset, new in enumerate(replacement):
            graph.node.insert(index + offset, new)
        rewritten += 1
    return rewritten


def prepare_for_weight_only(model: Any) -> dict[str, int]:
    """Apply both rewrites; returns how many nodes each changed (for the manifest)."""
    return {
        "gemm_rewritten": gemm_to_matmul(model),
        "transposes_folded": fold_weight_transposes(model),
    }
