"""``onnxchat bench --breakdown``: where a CPU decode step's time goes, by taking the graph apart.

ONNX Runtime's profiler adds a few microseconds to every node, which on a small model (about
800 nodes in a step of about 10 ms) inflates the small operators. Timing parts of the graph on
their own, interleaved with the whole step, does not:

* the projections alone: every ``MatMulNBits`` node (or ``MatMul`` by a weight, in an fp32
  graph; the LM head included), each reading an input of its width, nothing else in the
  graph;
* the attention alone: every ``GroupQueryAttention`` node, on caches filled to the context,
  bound in place as the engine binds them;
* the block-sum correction alone: the nodes a fused export adds after a projection whose GGUF
  blocks carry offsets (Q4_1's ``m``; named ``…/offset/…``).

What the parts leave of the whole step is everything else: norms, activations, splits and
ONNX Runtime's scheduling between nodes. (The whole step with the correction simply removed
is no measure of it: its wrong activations change the cost of the rest, at 4,096 tokens of
context making the step 2.5 times slower.) The graph is read with the ``onnx`` package (the
export extra); only fused exports are named so that their parts can be found.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from desktop import bench_memory
from desktop.bench_shape import prompt as shape_prompt
from desktop.bench_shape import time_greedy
from desktop.engine import folding, resolve_model
from desktop.engine.manifest import read_manifest
from desktop.engine.runtime import DecoderIO, SharedKVDecoder, create_session
from desktop.errors import UserError

CORRECTION_MARK = "/offset/"
ATTENTION_OP = "GroupQueryAttention"
PROJECTION_OP = "MatMulNBits"
#: Whole steps of the graph re-quantized without its offsets (:func:`requantize_offsets`),
#: then with its 8-bit projections in 4 bits too (:func:`requantize_8bit`).
REQUANTIZED = "whole step, re-quantized to symmetric 4-bit"
REQUANTIZED_HEAD = "… and the LM head in 4 bits too"
#: The whole step as the engine runs it on the CPU: the same weights, the offsets applied by
#: ONNX Runtime's kernel from its packed weights (desktop/engine/folding.py).
FOLDED = "whole step, offsets folded into the packed weights"
#: The same where the kernel's one-row path does not read them (desktop/engine/spare_row.py).
FOLDED_SPARE_ROW = "whole step, offsets folded, with a spare row"
#: No part of the graph: the time to read as many bytes as the step the engine runs reads
#: (its weights as packed and its cache; desktop/bench_memory.py), the least a step can take
#: where they do not fit in the CPU's caches.
READING = "reading the engine's step's bytes alone"


@dataclass
class Row:
    """One measured part: its name, how many nodes of the shipped graph it holds, its time."""

    part: str
    nodes: int
    ms: float
    share: float


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    return next(helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def _part_model(source: Any, nodes: list, inputs: list, outputs: list) -> Any:
    """A model of ``nodes`` with the initializers they read, from ``source``'s opsets."""
    from onnx import helper

    used = {name for node in nodes for name in node.input}
    initializers = [t for t in source.graph.initializer if t.name in used]
    part = helper.make_graph(nodes, "part", inputs, outputs, initializers)
    return helper.make_model(part, opset_imports=source.opset_import, ir_version=source.ir_version)


def save_part(model: Any, folder: Path, name: str) -> Path:
    """Write a part as ``folder/name.onnx`` with its weights in a data file beside it: parts
    of a large model exceed what one protobuf holds, and ONNX Runtime reads only data files
    inside the model's own folder (a link to the model's file is refused)."""
    import onnx

    path = folder / f"{name}.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{name}.onnx_data", size_threshold=1024)
    return path


def _projections(source: Any) -> list[tuple[Any, int, int]]:
    """The graph's projections with their widths (K, N): ``MatMulNBits`` nodes, and ``MatMul``
    nodes by a weight of the graph (``fp32-fused``) other than the correction's."""
    constants = {t.name: t for t in source.graph.initializer}
    found = []
    for node in source.graph.node:
        if node.op_type == PROJECTION_OP:
            found.append((node, _attr(node, "K"), _attr(node, "N")))
        elif (node.op_type == "MatMul" and CORRECTION_MARK not in node.name
              and node.input[1] in constants):
            k, n = constants[node.input[1]].dims
            found.append((node, k, n))
    return found


def projections_part(source: Any) -> tuple[Any, dict[str, np.ndarray], int]:
    """Every projection, reading a graph input ``x<K>`` of its width, nothing else."""
    from onnx import TensorProto, helper

    found = _projections(source)
    nodes, outputs, widths = [], [], set()
    for i, (node, k, n) in enumerate(found):
        widths.add(k)
        part = helper.make_node(node.op_type, [f"x{k}", *node.input[1:]], [f"y{i}"],
                                name=node.name, domain=node.domain or None)
        part.attribute.extend(node.attribute)
        nodes.append(part)
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 1, n]))
    inputs = [helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, [1, 1, k])
              for k in sorted(widths)]
    rng = np.random.default_rng(0)
    feed = {f"x{k}": rng.standard_normal((1, 1, k)).astype(np.float32) for k in widths}
    return _part_model(source, nodes, inputs, outputs), feed, len(nodes)


def correction_part(source: Any) -> tuple[Any, dict[str, np.ndarray], int] | None:
    """The block-sum correction nodes, fed the projection inputs and outputs they read;
    None when the graph has none (every weight symmetric)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = source.graph
    nodes = [n for n in graph.node if CORRECTION_MARK in n.name]
    if not nodes:
        return None
    produced = {out for n in nodes for out in n.output}
    constants = {t.name: t for t in graph.initializer}
    width: dict[str, int] = {}
    for node in nodes:  # Reshape reads (…, K); MatMul's constant is (K/block, N); Add reads (…, N)
        if node.op_type == "Reshape":
            width[node.input[0]] = int(np.prod(numpy_helper.to_array(constants[node.input[1]])[2:]))
        elif node.op_type == "MatMul":
            n = constants[node.input[1]].dims[1]  # (K/block, N)
            adds = [a for a in nodes if a.op_type == "Add" and node.output[0] in a.input]
            for add in adds:
                width.update({x: n for x in add.input if x not in produced})
    external = sorted({x for n in nodes for x in n.input
                       if x and x not in produced and x not in constants})
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 1, width[x]])
              for x in external]
    outputs = [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None)
               for n in nodes if n.op_type == "Add"]
    rng = np.random.default_rng(1)
    feed = {x: rng.standard_normal((1, 1, width[x])).astype(np.float32) for x in external}
    return _part_model(source, nodes, inputs, outputs), feed, len(nodes)


def _dequantized(node: Any, constants: dict[str, Any]) -> np.ndarray:
    """A ``MatMulNBits`` node's weights as floats, (N, K): scale × (code − the implicit zero
    point, the middle code; the fused builder writes no other)."""
    from onnx import numpy_helper

    k, n, bits, block = (_attr(node, name) for name in ("K", "N", "bits", "block_size"))
    blocks = -(-k // block)
    codes = numpy_helper.to_array(constants[node.input[1]]).reshape(n, blocks, -1)
    if bits == 4:  # two codes a byte, the first in the low nibble
        codes = np.stack([codes & 15, codes >> 4], axis=-1).reshape(n, blocks, -1)
    scales = numpy_helper.to_array(constants[node.input[2]]).reshape(n, blocks, 1)
    weights = (codes.astype(np.float32) - 2 ** (bits - 1)) * scales
    return weights.reshape(n, -1)[:, :k]


def _quantize_symmetric_4bit(node: Any, weights: np.ndarray, constants: dict[str, Any]) -> None:
    """Rewrite ``node``'s weights as symmetric 4-bit blocks of its block size (scale = the
    block's largest magnitude / 7, the implicit zero point), as a builder that quantizes
    float weights writes them: the export's own rule for 4 bits
    (``export.builders.weights.quantize_symmetric``), written again here because the app does
    not import the export package; a test keeps the two equal."""
    from onnx import helper, numpy_helper

    n, k = weights.shape
    block = _attr(node, "block_size")
    blocks = -(-k // block)
    padded = np.zeros((n, blocks * block), np.float32)
    padded[:, :k] = weights
    padded = padded.reshape(n, blocks, block)
    largest = np.abs(padded).max(axis=-1)
    scales = np.where(largest > 0, largest / 7, 1).astype(np.float32)
    codes = np.clip(np.rint(padded / scales[..., None]) + 8, 0, 15).astype(np.uint8)
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)
    for name, value in ((node.input[1], packed), (node.input[2], scales.reshape(-1))):
        constants[name].CopyFrom(numpy_helper.from_array(value, name))
    kept = [a for a in node.attribute if a.name != "bits"]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("bits", 4)])


def requantize_offsets(model: Any) -> bool:
    """Re-quantize, in place, every projection whose blocks carry offsets to symmetric 4-bit
    blocks with the implicit zero point, as builders that quantize float weights emit them
    (onnxruntime-genai's int4), and remove the block-sum correction. False when ``model``
    has no correction.

    Not the source's weights (the default model's perplexity on the validation text ×1.37),
    so never shipped: the step it gives measures in place what the exact offsets cost.
    Removing the correction alone does not, since its wrong activations change the cost of
    the rest of the step."""
    from onnx import numpy_helper

    graph = model.graph
    adds = [n for n in graph.node if n.op_type == "Add" and CORRECTION_MARK in n.name]
    if not adds:
        return False
    constants = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    for add in adds:
        projection, correction = (producer[x] for x in add.input)
        if CORRECTION_MARK in projection.name:
            projection, correction = correction, projection
        offsets = numpy_helper.to_array(constants[correction.input[1]])  # (K/block, N)
        weights = _dequantized(projection, constants)
        block = _attr(projection, "block_size")
        weights += np.repeat(offsets.T, block, axis=1)[:, : weights.shape[1]]
        _quantize_symmetric_4bit(projection, weights, constants)
        projection.output[0] = add.output[0]  # the Add was its only reader
    kept = [n for n in graph.node if CORRECTION_MARK not in n.name]
    del graph.node[:]
    graph.node.extend(kept)
    read = {x for n in graph.node for x in n.input}
    used = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(used)
    return True


def eight_bit_projections(model: Any) -> list[Any]:
    """The 8-bit ``MatMulNBits`` nodes (the LM head of a GGUF's Q8_0 table)."""
    return [n for n in model.graph.node
            if n.op_type == PROJECTION_OP and _attr(n, "bits") == 8]


def requantize_8bit(model: Any) -> None:
    """Re-quantize, in place, the 8-bit projections to symmetric 4-bit blocks."""
    constants = {t.name: t for t in model.graph.initializer}
    for node in eight_bit_projections(model):
        _quantize_symmetric_4bit(node, _dequantized(node, constants), constants)


def attention_part(source: Any, io: DecoderIO) -> tuple[Any, list[Any], int]:
    """Every attention node, reading graph inputs for its new query/keys/values, the two
    lengths and the caches, and the model's own rotary tables. Returns the part, its inputs
    and its node count."""
    from onnx import TensorProto, helper

    graph = source.graph
    nodes = [n for n in graph.node if n.op_type == ATTENTION_OP]
    inputs, seen, outputs = [], set(), []

    def add_input(name: str, kind: int, shape: list[Any]) -> None:
        if name and name not in seen:
            inputs.append(helper.make_tensor_value_info(name, kind, shape))
            seen.add(name)

    for node in nodes:
        heads, kv_heads = _attr(node, "num_heads"), _attr(node, "kv_num_heads")
        packed = len(node.input) < 2 or not node.input[1]
        widths = ([(heads + 2 * kv_heads) * io.head_dim] if packed else
                  [heads * io.head_dim, kv_heads * io.head_dim, kv_heads * io.head_dim])
        for name, width in zip(node.input[:3], widths, strict=False):
            add_input(name, TensorProto.FLOAT, [1, 1, width])
        cache = TensorProto.INT8 if io.kv_dtype == np.int8 else TensorProto.FLOAT
        for past in node.input[3:5]:
            add_input(past, cache, [1, io.kv_heads, "length", io.head_dim])
        add_input(node.input[5], TensorProto.INT32, [1])  # seqlens_k: past length
        add_input(node.input[6], TensorProto.INT32, [])  # total_sequence_length
        outputs += [helper.make_tensor_value_info(name, kind, None)
                    for name, kind in zip(node.output[:3], (TensorProto.FLOAT, cache, cache),
                                          strict=False)]
    return _part_model(source, nodes, inputs, outputs), inputs, len(nodes)


class _Step:
    """A full decode step driven as the engine drives it: shared caches, one token at a time."""

    def __init__(self, model: Path, threads: int, context: int, steps: int) -> None:
        self.graph = model
        session, _ = create_session(model, "cpu", threads)
        self.decoder = SharedKVDecoder(session, "cpu", context + steps + 1,
                                       initial_capacity=context + steps + 1)
        self.prompt = shape_prompt(self.decoder.vocab_size or 260, context)
        self.steps = steps

    def __call__(self) -> float:
        return 1e3 / time_greedy(self.decoder, self.prompt, self.steps)[1]


class _Reading:
    """Reading ``total`` bytes once on ``threads`` threads (bench_memory.stream_seconds)."""

    def __init__(self, total: int, threads: int) -> None:
        self.total, self.threads = total, threads

    def __call__(self) -> float:
        return bench_memory.stream_seconds(self.total, self.threads) * 1e3


class _Part:
    """A part graph run ``steps`` times on fixed inputs (bound once, caches in place)."""

    def __init__(self, model: Path, threads: int, steps: int, feed: dict[str, np.ndarray],
                 caches: dict[str, tuple[str, ort.OrtValue]] | None = None) -> None:
        self.session, _ = create_session(model, "cpu", threads)
        self.binding = self.session.io_binding()
        for name, value in feed.items():
            self.binding.bind_cpu_input(name, value)
        bound = set()
        for past, (present, buffer) in (caches or {}).items():
            self.binding.bind_ortvalue_input(past, buffer)
            self.binding.bind_ortvalue_output(present, buffer)
            bound.add(present)
        for output in self.session.get_outputs():
            if output.name not in bound:
                self.binding.bind_output(output.name, "cpu")
        self.steps = steps

    def __call__(self) -> float:
        started = time.perf_counter()
        for _ in range(self.steps):
            self.session.run_with_iobinding(self.binding)
        return (time.perf_counter() - started) / self.steps * 1e3


def _attention_feed(inputs: list[Any], io: DecoderIO, context: int
                    ) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ort.OrtValue]]]:
    """Inputs for the attention part: caches of ``context`` positions (bound in place), the
    lengths of one new position after them, random new queries, keys and values."""
    from onnx import TensorProto

    rng = np.random.default_rng(3)
    feed: dict[str, np.ndarray] = {}
    caches: dict[str, tuple[str, ort.OrtValue]] = {}
    for item in inputs:
        dims = [d.dim_value for d in item.type.tensor_type.shape.dim]
        if item.name.startswith("past_key_values."):
            shape = (1, io.kv_heads, context + 1, io.head_dim)
            # int8 codes spread as a calibrated cache's are (rms about a third of the range)
            values = (np.clip(np.rint(rng.standard_normal(shape) * 40), -127, 127).astype(np.int8)
                      if io.kv_dtype == np.int8
                      else (rng.standard_normal(shape) * 0.1).astype(np.float32))
            present = item.name.replace("past_key_values.", "present.", 1)
            caches[item.name] = (present, ort.OrtValue.ortvalue_from_numpy(values))
        elif item.type.tensor_type.elem_type == TensorProto.INT32:
            feed[item.name] = (np.array([context], np.int32) if dims else
                               np.array(context + 1, np.int32))
        else:
            feed[item.name] = rng.standard_normal(dims).astype(np.float32)
    return feed, caches


def check_can_break_down() -> None:
    if importlib.util.find_spec("onnx") is None:
        raise UserError("--breakdown takes the graph apart with the onnx package: pip install "
                        "'onnxchat[export]'")


def run_breakdown(model_arg: str | None, threads: int, context: int, steps: int,
                  runs: int, kv_cache: str = "fp32") -> dict[str, Any]:
    """Time the whole step and its parts, interleaved run by run; medians of ``runs``; of
    the CPU graph, or with ``kv_cache`` "int8" of the graph with the int8 KV cache."""
    check_can_break_down()
    import onnx

    manifest = read_manifest(resolve_model(model_arg))
    if manifest.raw["onnx"].get("layout") != "fused":
        raise UserError(f"{manifest.name} is not a fused export: --breakdown finds the parts "
                        "of a step by the fused builder's node names; re-export it with a "
                        "-fused recipe or q4-gguf")
    if context + steps + 1 > manifest.context_length:
        raise UserError(f"--prompt-tokens + --new-tokens exceed the model's context "
                        f"({manifest.context_length})")
    graph = manifest.graphs["cpu"]
    if kv_cache == "int8":
        graph = manifest.require_int8_cache()
    path = manifest.folder / graph
    source = onnx.load(str(path))
    whole = _Step(path, threads, context, steps)
    io = DecoderIO.read(whole.decoder.session)
    projections, projection_feed, n_projections = projections_part(source)
    attention, attention_inputs, n_attention = attention_part(source, io)
    correction = correction_part(source)
    with tempfile.TemporaryDirectory(prefix="onnxchat-breakdown-") as scratch:
        def part(model: Any, name: str, feed: dict[str, np.ndarray],
                 caches: dict[str, tuple[str, ort.OrtValue]] | None = None) -> _Part:
            saved = save_part(model, Path(scratch), name)
            return _Part(saved, threads, steps, feed, caches)

        # name: (runner, nodes of the shipped graph it holds, whether it is a part alone)
        runners: dict[str, tuple[Any, int, bool]] = {
            "whole step": (whole, len(source.graph.node), False),
            "projections alone": (
                part(projections, "projections", projection_feed), n_projections, True),
            f"attention alone ({ATTENTION_OP})": (
                part(attention, "attention", *_attention_feed(attention_inputs, io, context)),
                n_attention, True),
        }
        unfolded = None
        if correction is not None:
            model, feed, count = correction
            runners["block-sum correction alone"] = (part(model, "correction", feed), count,
                                                     True)
            try:
                folded = folding.folded_graph(
                    path, threads, lambda p: create_session(p, "cpu", threads)[0], _probe)
            except folding.FoldError as exc:
                unfolded = str(exc)
            else:
                if folded is not None:
                    facts = folding.built_facts(folded[1])
                    runners[FOLDED_SPARE_ROW if facts["spare_row"] else FOLDED] = (
                        _Step(folded[1], threads, context, steps), facts["nodes"], False)
            # Whole steps, not parts: the same graph re-quantized without its offsets, then
            # with its 8-bit LM head in 4 bits too (the source is not needed any more, so it
            # is changed in place).
            requantize_offsets(source)
            runners[REQUANTIZED] = (_Step(save_part(source, Path(scratch), "requantized"),
                                          threads, context, steps), len(source.graph.node),
                                    False)
            if eight_bit_projections(source):
                # saving moved the weights into the data file; read them back
                onnx.load_external_data_for_model(source, scratch)
                requantize_8bit(source)
                runners[REQUANTIZED_HEAD] = (_Step(save_part(source, Path(scratch), "head"),
                                                   threads, context, steps),
                                             len(source.graph.node), False)
        engine_step = next((runners[name][0] for name in (FOLDED, FOLDED_SPARE_ROW)
                            if name in runners), whole)
        weights, cache = bench_memory.onnx_step_bytes(engine_step.graph, engine_step.decoder,
                                                      context + steps // 2)
        runners[READING] = (_Reading(weights + cache, threads), 0, False)
        del source, projections, attention, correction
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(runs):
            for name, (runner, _, _) in runners.items():
                times[name].append(runner())
    medians = {name: float(np.median(values)) for name, values in times.items()}
    step = medians["whole step"]
    rows = [Row(name, nodes, round(medians[name], 3), round(medians[name] / step, 3))
            for name, (_, nodes, _) in runners.items()]
    alone = [name for name, (_, _, is_part) in runners.items() if is_part]
    rest = step - sum(medians[name] for name in alone)
    rows.append(Row("the rest (norms, activations, scheduling)",
                    runners["whole step"][1] - sum(runners[name][1] for name in alone),
                    round(rest, 3), round(rest / step, 3)))
    return {"model": manifest.name, "graph": graph, "context": context,
            "threads": threads, "steps": steps, "runs": runs,
            "onnxruntime": ort.__version__, "rows": [asdict(r) for r in rows],
            "reading_mb": {"weights": round(weights / 1e6, 1), "cache": round(cache / 1e6, 1)},
            "unfolded": unfolded}


def _probe(session: ort.InferenceSession) -> np.ndarray:
    return folding.probe_logits(
        SharedKVDecoder(session, "cpu", len(folding.PROBE_IDS), len(folding.PROBE_IDS)))


def breakdown_table(report: dict[str, Any]) -> str:
    lines = [f"Where a decode step's time goes: {report['model']} ({report['graph']}), "
             f"{report['context']} tokens of context, {report['threads']} threads, "
             f"medians of {report['runs']} interleaved runs of {report['steps']} steps",
             f"{'part':<52} {'nodes':>6} {'ms':>8} {'share':>7}"]
    for row in report["rows"]:
        lines.append(f"{row['part']:<52} {row['nodes']:>6} {row['ms']:>8.3f} "
                     f"{row['share']:>7.1%}")
    reading = report["reading_mb"]
    lines.append(f"(the step the engine runs reads {reading['weights']} MB of weights as ONNX "
                 f"Runtime packs them and {reading['cache']} MB of cache)")
    if report.get("unfolded"):
        lines.append(f"(the offsets could not be folded here: {report['unfolded']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda":
        raise UserError("--breakdown measures the CPU graph; leave out --device cuda")
    if args.prompt_tokens < 1 or args.new_tokens < 1 or args.runs < 1:
        raise UserError("--prompt-tokens, --new-tokens and --runs must be at least 1")
    report = run_breakdown(args.model, args.threads, args.prompt_tokens, args.new_tokens,
                           args.runs, args.kv_cache)
    print(json.dumps(report, indent=2) if args.json else breakdown_table(report))
    return 0
