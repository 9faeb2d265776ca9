"""One row more than the graph has tokens, so that ONNX Runtime's 4-bit kernel never
multiplies a single row.

Why: on x86 CPUs with AVX2 and no AVX-512, ONNX Runtime's 4-bit kernel (``MatMulNBits`` at
accuracy level 4) computes a one-row product — every decode step — in a path of its own,
``SQ4BitGemmM1Kernel_CompInt8_avx2``, which applies the zero point to the codes and never
reads the packed block terms where :mod:`desktop.engine.folding` puts the Q4_1 offsets. Its
many-row path reads them. So on those CPUs the folded graph gets a spare row:

- a zero row appended to the embeddings (``Pad``), carried by every row-wise node — norms,
  projections, activations, residual adds — as the tokens' rows are;
- taken off the queries, keys and values before each attention node (``Slice``), so the
  cache and the attention see only the tokens, and put back, as zeros, after it (``Pad``);
- passed over where the graph takes the last position for the logits: its ``Slice`` from
  −1 becomes a ``Slice`` from −2 to −1.

Outside attention no node mixes rows, so each token's row is computed as without the spare
one; the folding's probe checks that on a prompt and on a one-token step. A graph this module
cannot place the row in (no embedding ``Gather`` of ``input_ids``, no attention node, no
last-position ``Slice``) is one line, and the caller runs the graph as exported.
"""

from __future__ import annotations

from desktop.engine import onnx_wire as wire

ATTENTION_OP = "GroupQueryAttention"
#: Graph inputs and initializers this module adds, all int64.
CONSTANTS = {
    "spare_row.pads": [0, 0, 0, 0, 1, 0],  # one row after the last, on axis 1 of [1, T, C]
    "spare_row.zero": [0],
    "spare_row.minus_one": [-1],
    "spare_row.minus_two": [-2],
    "spare_row.axis": [1],
}
#: Attention's inputs that carry one row per token: the queries, keys and values.
ROW_INPUTS = 3


class SpareRowError(ValueError):
    """Why the spare row could not be placed in a graph, in one line."""


def add_spare_row(model: memoryview) -> bytes:
    """``model`` with a spare row (module docstring). Raises :class:`SpareRowError`."""

    def edit_graph(graph: memoryview) -> bytes:
        nodes = [wire.read_node(n) for n in wire.messages(graph, wire.GRAPH_NODE)]
        inputs = {wire.string(v, wire.VALUE_INFO_NAME)
                  for v in wire.messages(graph, wire.GRAPH_INPUT)}
        initializers = {wire.string(t, wire.TENSOR_NAME): t
                        for t in wire.messages(graph, wire.GRAPH_INITIALIZER)}
        int64 = {name: t for name, t in initializers.items()
                 if wire.ints(t, wire.TENSOR_DATA_TYPE) == [wire.INT64]}
        made = {name for n in nodes for name in n.outputs}
        taken = set(CONSTANTS) & (inputs | set(initializers) | made)
        if taken:
            raise SpareRowError(f"the graph already has a tensor named {sorted(taken)[0]}")
        embeddings = [n for n in nodes if n.op_type == "Gather" and len(n.inputs) == 2
                      and n.inputs[1] == "input_ids" and "input_ids" in inputs]
        if len(embeddings) != 1:
            raise SpareRowError("the graph has no single embedding Gather of input_ids to "
                                "append a spare row to")
        embedded = embeddings[0].outputs[0]

        def values(name: str) -> list[int] | None:
            return wire.int64_values(int64[name]) if name in int64 else None

        last = [n for n in nodes if n.op_type == "Slice" and len(n.inputs) >= 4
                and values(n.inputs[1]) == [-1] and values(n.inputs[3]) == [1]]
        if not last:
            raise SpareRowError("the graph takes its last position in a way this version of "
                                "OnnxChat does not know")
        if not any(n.op_type == ATTENTION_OP for n in nodes):
            raise SpareRowError(f"the graph has no {ATTENTION_OP} node")

        last_ids = {id(n) for n in last}
        edited: list[bytes] = []
        for n in nodes:
            if n.op_type == ATTENTION_OP:
                rows = []
                for name in n.inputs[:ROW_INPUTS]:
                    if not name:
                        rows.append(name)
                        continue
                    rows.append(f"{name}/without_spare_row")
                    edited.append(wire.node("Slice", [name, "spare_row.zero",
                                                      "spare_row.minus_one", "spare_row.axis"],
                                            [rows[-1]], f"{n.name}/spare_row/slice_{len(rows)}"))
                output = n.outputs[0]
                attended = wire.read_node(memoryview(
                    wire.with_inputs(n, rows + n.inputs[ROW_INPUTS:])))
                edited.append(wire.with_outputs(
                    attended, [f"{output}/without_spare_row", *n.outputs[1:]]))
                edited.append(wire.node("Pad", [f"{output}/without_spare_row",
                                                "spare_row.pads"], [output],
                                        f"{n.name}/spare_row/pad"))
                continue
            if id(n) in last_ids:
                edited.append(wire.with_inputs(n, [n.inputs[0], "spare_row.minus_two",
                                                   "spare_row.minus_one", *n.inputs[3:]]))
                continue
            if n is embeddings[0]:
                edited.append(wire.with_outputs(n, [f"{embedded}/without_spare_row"]))
                edited.append(wire.node("Pad", [f"{embedded}/without_spare_row",
                                                "spare_row.pads"], [embedded],
                                        f"{n.name}/spare_row/pad"))
                continue
            edited.append(bytes(n.encoded))

        rest = wire.rewrite(graph, lambda f: b"" if f.number == wire.GRAPH_NODE else None)
        constants = b"".join(wire.length_field(wire.GRAPH_INITIALIZER,
                                               wire.int64_tensor(name, value))
                             for name, value in CONSTANTS.items())
        return (b"".join(wire.length_field(wire.GRAPH_NODE, e) for e in edited) + rest
                + constants)

    return wire.rewrite_graph(model, edit_graph)
