"""Q4_1 projections at the speed of ONNX Runtime's 4-bit kernel: their block offsets folded
into the weights it packs, once per machine.

A GGUF's Q4_1 block is ``w = d·q + m`` (a scale and an offset per 32 weights). ONNX has no
such operator, so the ``q4-gguf`` export writes each projection as ``MatMulNBits`` with the
codes and scales, followed by a block-sum correction — ``Reshape`` → ``ReduceSum`` →
``MatMul`` by the offsets → ``Add``: exact, portable to every ONNX runtime, and on the CPU a
third of a short-context decode step (models/README.md, "What the GGUF's exact weights cost").
ONNX Runtime's own int8 kernel already adds a per-block term times each block's activation
sum — it is how it applies a zero point — and keeps that term, ``−scale × zero point``, as
floats in the weights it packs at load. Only integer zero points reach it from a graph; Q4_1's
are fractional. So this module builds, from the folder's graph:

1. the graph without the corrections (every other node and weight unchanged);
2. that graph as ONNX Runtime saves it with its packed weights in an external file
   (``session.save_external_prepacked_constant_initializers``), every tensor moved to a
   4 KiB boundary (ONNX Runtime maps the packed weights in place and misreads ones it wrote
   unaligned);
3. each projection's packed block terms, checked to be exactly ``−8 × scale`` (the implicit
   zero point) in the layout this module expects, then replaced by ``−8 × scale + m'`` where
   ``m'`` is the graph's own offset for that block — the correction the graph applied,
   applied by the kernel instead (to the int8-rounded activations it multiplies, as
   llama.cpp's Q4_1 × Q8_1 product does);
4. a check against the folder's graph on a fixed prompt, read at once and its last token
   read again as a one-token step (the logits must agree to 10 % of their norm on both: the
   rounding of activation sums moves them ~3 %, a misplaced term ~100 %), and the folded
   graph's own logits for both, which every later load must reproduce before it is used.
   Both paths, because ONNX Runtime's kernel may take another one for a single row.

Where the kernel's one-row path is known not to read the block terms — ONNX Runtime's AVX2
kernels (x86 CPUs without AVX-512) apply the zero point inside a one-row product, so a graph
folded there as it is reads prompts right and decodes wrong (:func:`one_row_reads_block_terms`)
— the folded graph gets a spare row (:mod:`desktop.engine.spare_row`): one row more than it
has tokens, so that no product has one row.

The result lives in the user's cache, keyed by the graph file, ONNX Runtime's version and the
CPU (the packed layout depends on both); a failure at any step is one line and the exact graph
runs instead. ``ONNXCHAT_FOLD_OFFSETS=0`` turns it off. The folder itself never changes:
other runtimes load it as exported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from desktop.cpuinfo import CpuIsa, cpu_isa
from desktop.engine import onnx_wire as wire
from desktop.engine.spare_row import add_spare_row
from desktop.errors import ModelError
from desktop.paths import cache_dir

log = logging.getLogger(__name__)

#: Bump when the cache's contents or checks change; older entries are then rebuilt (2: the
#: probe checks a one-token step too; 3: AVX2 CPUs fold with a spare row instead of refusing).
FORMAT = 3
DISABLE_ENV = "ONNXCHAT_FOLD_OFFSETS"
GRAPH_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
PROBE_FILE = "probe.npy"
INFO_FILE = "folded.json"
NOTHING_FILE = "nothing-to-fold.json"
#: Markers of entries earlier formats wrote, removed like any entry of the same graph (format
#: 2 marked the graphs it refused to fold on AVX2 CPUs).
FORMER_MARKERS = ("cannot-fold-here.json",)
#: Token ids every vocabulary has (the smallest test models have 512).
PROBE_IDS = (1, 7, 19, 42, 100, 250, 333, 411, 17, 5, 64, 128, 200, 300, 400, 450)
#: The folded graph's logits on the probe against the folder graph's, as a share of the
#: latter's norm, on each of its two rows (the default model's: 0.008, and 0.01–0.06 on
#: prompts of 8 to 400 tokens; a wrong block term gives ~1).
MAX_RELATIVE_ERROR = 0.10
#: A later load's probe logits against the ones recorded at build (the same session on the
#: same machine computes them identically; measured difference 0).
MAX_PROBE_DRIFT = 1e-3
ALIGNMENT = 4096
BLOCK = 32
#: Columns per panel of the packed block terms (``[N / 16][K / 32][16]`` floats).
PANEL = 16

Probe = Callable[[ort.InferenceSession], np.ndarray]
Opener = Callable[[Path], ort.InferenceSession]
#: What a probe's two rows are, for the one line that says which one a folded graph got wrong.
PROBE_ROWS = ("the prompt", "a one-token step")


class Decoder(Protocol):
    """What :func:`probe_logits` drives: the engine's decoders."""

    def forward(self, token_ids: list[int] | np.ndarray) -> np.ndarray: ...

    def rewind(self, length: int) -> None: ...


def one_row_reads_block_terms(isa: CpuIsa) -> bool:
    """Whether ONNX Runtime's 4-bit kernel on this CPU reads the packed block terms for a
    one-row product (a decode step), where the folded offsets live. Its AVX2 build
    (``SQ4BitGemmM1Kernel_CompInt8_avx2``) subtracts the zero point from the codes instead,
    so the folded graph gets a spare row there; its AVX-512 builds use the block terms for
    every row count. Other CPUs are left to the probe."""
    return not (isa.features.get("AVX2") and isa.features.get("AVX-512F") is False)


def probe_logits(decoder: Decoder) -> np.ndarray:
    """``[2, vocab]``: the last logits of :data:`PROBE_IDS` read as one prompt, then those of
    its last token read again as a one-token step over the rest (``decoder`` starts empty)."""
    prompt = np.array(decoder.forward(PROBE_IDS), dtype=np.float32)
    decoder.rewind(len(PROBE_IDS) - 1)
    step = np.array(decoder.forward(PROBE_IDS[-1:]), dtype=np.float32)
    return np.stack([prompt, step])


class FoldError(Exception):
    """Why a graph could not be folded, in one line."""


@dataclass(frozen=True)
class Correction:
    """One projection's block-sum correction, as found in the graph."""

    projection: str
    weight: str
    scales: str
    k: int
    n: int
    offsets: np.ndarray  # (k / 32, n) float32, added once per block
    removed: frozenset[str]
    output: str


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1") != "0"


def _array(tensor: memoryview, folder: Path) -> np.ndarray:
    """A float32 initializer's values, stored inline or in an external file."""
    dims = wire.ints(tensor, wire.TENSOR_DIMS)
    kind = wire.ints(tensor, wire.TENSOR_DATA_TYPE)
    if kind != [1]:
        raise FoldError(f"offsets {wire.string(tensor, wire.TENSOR_NAME)} are not float32")
    place = wire.external_data(tensor)
    if place:
        count = int(np.prod(dims))
        values = np.fromfile(folder / place["location"], np.float32, count,
                             offset=int(place.get("offset", 0)))
    else:
        raw = wire.messages(tensor, wire.TENSOR_RAW_DATA)
        if not raw:
            raise FoldError(f"offsets {wire.string(tensor, wire.TENSOR_NAME)} have no raw data")
        values = np.frombuffer(bytes(raw[-1]), np.float32)
    return values.reshape(dims)


def find_corrections(graph: memoryview, folder: Path) -> list[Correction]:
    """Every ``MatMulNBits`` (4-bit, blocks of 32, implicit zero point) whose output only
    feeds ``Add(·, MatMul(ReduceSum(Reshape(its input)), offsets))``."""
    nodes = [wire.read_node(n) for n in wire.messages(graph, wire.GRAPH_NODE)]
    producer = {out: node for node in nodes for out in node.outputs}
    consumers: dict[str, int] = {}
    for node in nodes:
        for name in node.inputs:
            consumers[name] = consumers.get(name, 0) + 1
    tensors = {wire.string(t, wire.TENSOR_NAME): t
               for t in wire.messages(graph, wire.GRAPH_INITIALIZER)}
    found = []
    for add in nodes:
        if add.op_type != "Add" or len(add.inputs) != 2:
            continue
        projection, product = (producer.get(name) for name in add.inputs)
        if projection is None or product is None:
            continue
        if product.op_type == "MatMulNBits":
            projection, product = product, projection
        if (projection.op_type != "MatMulNBits" or product.op_type != "MatMul"
                or len(projection.inputs) != 3
                or projection.attributes.get("bits") != 4
                or projection.attributes.get("block_size") != BLOCK):
            continue
        sums = producer.get(product.inputs[0])
        blocks = producer.get(sums.inputs[0]) if sums is not None else None
        if (sums is None or sums.op_type != "ReduceSum" or blocks is None
                or blocks.op_type != "Reshape" or blocks.inputs[0] != projection.inputs[0]
                or product.inputs[1] not in tensors):
            continue
        if any(consumers.get(out) != 1 for out in
               (projection.outputs[0], product.outputs[0], sums.outputs[0], blocks.outputs[0])):
            continue
        k, n = projection.attributes.get("K", 0), projection.attributes.get("N", 0)
        offsets = _array(tensors[product.inputs[1]], folder)
        if offsets.shape != (k // BLOCK, n) or k % BLOCK or n % PANEL:
            raise FoldError(f"{projection.name}: offsets {list(offsets.shape)} do not fit "
                            f"K={k}, N={n} in blocks of {BLOCK}")
        found.append(Correction(projection.name, projection.inputs[1], projection.inputs[2],
                                k, n, offsets.astype(np.float32),
                                frozenset({add.name, product.name, sums.name, blocks.name}),
                                add.outputs[0]))
    return found


def strip(model: memoryview, corrections: list[Correction]) -> bytes:
    """The model without the corrections: each projection writes what its ``Add`` wrote."""
    removed = set().union(*(c.removed for c in corrections))
    renamed = {c.projection: c.output for c in corrections}

    def edit_graph(graph: memoryview) -> bytes:
        kept_nodes = []
        for encoded in wire.messages(graph, wire.GRAPH_NODE):
            node = wire.read_node(encoded)
            if node.name in removed:
                continue
            if node.name in renamed:
                kept_nodes.append(wire.with_outputs(node, [renamed[node.name]]))
            else:
                kept_nodes.append(bytes(encoded))
        used = {name for encoded in kept_nodes
                for name in wire.strings(memoryview(encoded), wire.NODE_INPUT)}
        used |= {wire.string(v, wire.VALUE_INFO_NAME)
                 for v in wire.messages(graph, wire.GRAPH_OUTPUT)}

        def edit(f: wire.Field) -> bytes | None:
            if f.number == wire.GRAPH_NODE:
                return b""
            if f.number == wire.GRAPH_INITIALIZER:
                name = wire.string(f.payload(graph), wire.TENSOR_NAME)
                return None if name in used else b""
            return None

        rest = wire.rewrite(graph, edit)
        return b"".join(wire.length_field(wire.GRAPH_NODE, n) for n in kept_nodes) + rest

    return wire.rewrite_graph(model, edit_graph)


def _save_options(threads: int, folder: Path, into: Path) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.optimized_model_filepath = str(into / GRAPH_FILE)
    for key, value in (
            ("session.optimized_model_external_initializers_file_name", DATA_FILE + ".raw"),
            ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
            ("session.save_external_prepacked_constant_initializers", "1"),
            # a graph read from memory finds its external data here
            ("session.model_external_initializers_file_folder_path", str(folder))):
        options.add_session_config_entry(key, value)
    return options


def _realign(work: Path) -> None:
    """Rewrite the saved graph's data file with every tensor and packed weight on a 4 KiB
    boundary, and the graph's offsets to match."""
    raw_path = work / (DATA_FILE + ".raw")
    model = memoryview((work / GRAPH_FILE).read_bytes())
    with open(raw_path, "rb") as raw, open(work / DATA_FILE, "wb") as out:
        def place(offset: int, length: int) -> int:
            out.seek((out.tell() + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT)
            at = out.tell()
            raw.seek(offset)
            if out.write(raw.read(length)) != length:
                raise FoldError("the saved graph's data file is shorter than its graph says")
            return at

        def edit_tensor(tensor: memoryview) -> bytes:
            entries = wire.external_data(tensor)
            if not entries:
                return bytes(tensor)
            if entries.get("location") != DATA_FILE + ".raw":
                raise FoldError(f"the saved graph keeps data in {entries.get('location')}")
            for key, value in entries.items():
                if key == "offset":
                    entries[key] = str(place(int(value), int(entries["length"])))
                elif key.startswith("prepacked"):
                    kernel, _, spans = value.partition("|")
                    parts = spans.split(";")
                    parts[0] = str(place(int(parts[0]), int(parts[1])))
                    entries[key] = f"{kernel}|{';'.join(parts)}"
            entries["location"] = DATA_FILE
            return wire.with_external_data(tensor, entries)

        def edit_graph(graph: memoryview) -> bytes:
            return wire.rewrite(graph, lambda f: wire.length_field(
                wire.GRAPH_INITIALIZER, edit_tensor(f.payload(graph)))
                if f.number == wire.GRAPH_INITIALIZER else None)

        rewritten = wire.rewrite_graph(model, edit_graph)
    raw_path.unlink()
    (work / GRAPH_FILE).write_bytes(rewritten)


def _patch(work: Path, corrections: list[Correction]) -> None:
    """Add each projection's offsets to its packed block terms, after checking that those
    are ``−8 × scale`` where this module expects them."""
    tensors = {wire.string(t, wire.TENSOR_NAME): wire.external_data(t) for t in wire.messages(
        wire.graph_of(memoryview((work / GRAPH_FILE).read_bytes())), wire.GRAPH_INITIALIZER)}
    data = np.memmap(work / DATA_FILE, np.uint8, "r+")
    for c in corrections:
        weight, scales = tensors.get(c.weight), tensors.get(c.scales)
        packed = [v for k, v in (weight or {}).items() if k.startswith("prepacked")]
        if len(packed) != 1 or not scales or "offset" not in scales:
            raise FoldError(f"{c.projection}: ONNX Runtime saved no packed weights for it")
        offset, length = (int(x) for x in packed[0].partition("|")[2].split(";")[:2])
        blocks = c.k // BLOCK
        codes = c.n * blocks * BLOCK // 2
        terms = c.n * blocks * 4
        if length < codes + 2 * terms:
            raise FoldError(f"{c.projection}: its packed weights are {length} bytes, "
                            f"fewer than this layout needs")
        scale = np.frombuffer(data, np.float32, c.n * blocks, int(scales["offset"]))
        panels = (c.n // PANEL, PANEL, blocks)
        expected = (np.float32(-8) * scale).reshape(panels).transpose(0, 2, 1).ravel()
        start = offset + codes
        found = np.frombuffer(data, np.float32, c.n * blocks, start)
        if not np.array_equal(found, expected):
            raise FoldError(f"{c.projection}: ONNX Runtime {ort.__version__} packs its weights "
                            "in a layout this version of OnnxChat does not know")
        folded = expected + c.offsets.T.reshape(panels).transpose(0, 2, 1).ravel()
        data[start:start + terms] = folded.astype(np.float32).view(np.uint8)
    data.flush()
    del data


def _relative_errors(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Per probe row, the distance of ``ours`` from ``theirs`` as a share of the latter's
    norm."""
    return (np.linalg.norm(ours - theirs, axis=-1)
            / np.maximum(np.linalg.norm(theirs, axis=-1), 1e-30))


def _key(source: Path, cpu: str) -> str:
    stat = source.stat()
    facts = [FORMAT, str(source.resolve()), stat.st_size, stat.st_mtime_ns, ort.__version__, cpu]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:20]


def _build(source: Path, work: Path, threads: int, opener: Opener, probe: Probe) -> dict:
    model = memoryview(source.read_bytes())
    corrections = find_corrections(wire.graph_of(model), source.parent)
    if not corrections:
        return {}
    started = time.perf_counter()
    stripped = strip(model, corrections)
    del model
    spare_row = not one_row_reads_block_terms(cpu_isa())
    if spare_row:
        stripped = add_spare_row(memoryview(stripped))
    nodes = len(wire.messages(wire.graph_of(memoryview(stripped)), wire.GRAPH_NODE))
    ort.InferenceSession(stripped, _save_options(threads, source.parent, work),
                         providers=["CPUExecutionProvider"])
    del stripped
    _realign(work)
    _patch(work, corrections)
    reference = probe(opener(source))
    folded = probe(opener(work / GRAPH_FILE))
    errors = _relative_errors(folded, reference)
    worst = int(np.argmax(errors))
    error = float(errors[worst])
    if not error <= MAX_RELATIVE_ERROR:
        raise FoldError(f"the folded graph's logits differ from the graph's by {error:.0%} "
                        f"of their norm in {PROBE_ROWS[worst]} (at most "
                        f"{MAX_RELATIVE_ERROR:.0%} expected)")
    np.save(work / PROBE_FILE, folded)
    return {"projections": len(corrections), "nodes": nodes, "spare_row": spare_row,
            "relative_error": round(error, 5),
            "build_seconds": round(time.perf_counter() - started, 2)}


def built_facts(folded: Path) -> dict:
    """What :func:`folded_graph` recorded when it built ``folded`` (its graph file):
    ``projections``, ``nodes`` (before ONNX Runtime's optimizations), ``spare_row``,
    ``relative_error``, ``build_seconds``…"""
    return json.loads((folded.parent / INFO_FILE).read_text(encoding="utf-8"))


def folded_graph(source: Path, threads: int, opener: Opener, probe: Probe,
                 cache: Path | None = None) -> tuple[ort.InferenceSession, Path] | None:
    """The session of ``source`` with its Q4_1 offsets folded (opened by ``opener``, checked
    by ``probe``: :func:`probe_logits` of the session), built into ``cache`` (default: the
    user's cache) on first use; None when the graph has nothing to fold. Raises
    :class:`FoldError` (one line) when folding fails here; the caller then runs ``source``."""
    cache = cache or cache_dir() / "folded"
    cpu = cpu_isa().describe()
    try:
        key = _key(source, cpu)
        entry = cache / key
        if (entry / NOTHING_FILE).is_file():
            return None
        if not (entry / INFO_FILE).is_file():
            cache.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
            try:
                facts = _build(source, work, threads, opener, probe)
                marker = INFO_FILE if facts else NOTHING_FILE
                (work / marker).write_text(json.dumps(
                    {"source": str(source.resolve()), "onnxruntime": ort.__version__,
                     "cpu": cpu, **facts}, indent=2) + "\n", encoding="utf-8")
                _publish(work, entry, source)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if not facts:
                return None
            log.info("folded the Q4_1 offsets of %s into %s", source, entry)
        session = opener(entry / GRAPH_FILE)
        recorded = np.load(entry / PROBE_FILE)
        drift = float(np.abs(probe(session) - recorded).max())
        if not drift <= MAX_PROBE_DRIFT * float(np.abs(recorded).max()):
            shutil.rmtree(entry, ignore_errors=True)
            raise FoldError("the folded graph no longer reproduces its own logits "
                            f"(by {drift:.3g}); it was removed and is rebuilt next time")
        return session, entry / GRAPH_FILE
    except FoldError:
        raise
    except (OSError, ValueError, RuntimeError, ModelError) as exc:
        log.debug("folding %s failed", source, exc_info=True)
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FoldError(text[:200]) from None


def _publish(work: Path, entry: Path, source: Path) -> None:
    """Move the finished build into place (another process may have won the race) and
    remove older entries of the same graph, and those of graphs that are gone."""
    try:
        work.rename(entry)
    except OSError:
        if not entry.is_dir():
            raise
    for other in entry.parent.iterdir():
        if other == entry or other.name.startswith("."):
            continue
        for marker in (INFO_FILE, NOTHING_FILE, *FORMER_MARKERS):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                built_from = json.loads((other / marker).read_text())["source"]
                if built_from == str(source.resolve()) or not Path(built_from).exists():
                    shutil.rmtree(other, ignore_errors=True)
