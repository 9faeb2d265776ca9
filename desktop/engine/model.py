"""A loaded model: manifest, tokenizer, chat template, ONNX session and device."""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from desktop.engine import folding
from desktop.engine.manifest import Manifest, read_manifest, verify_files
from desktop.engine.runtime import (
    DeviceInfo,
    Int8CacheDecoder,
    KVDecoder,
    SharedKVDecoder,
    check_threads,
    create_session,
    cuda_unavailable_reason,
    default_threads,
)
from desktop.engine.settings import KV_CACHES
from desktop.engine.template import ChatTemplate
from desktop.errors import ModelError

log = logging.getLogger(__name__)

#: ONNX Runtime's CUDA GroupQueryAttention has fp16/bf16 kernels only, so the fp32 fused graph
#: would run its attention on the CPU with the shared KV buffer copied across every step.
#: Fused exports carry an fp16 graph for CUDA; folders exported before that do not.
FUSED_FP32_ON_CUDA = ("CUDA not used: this model's fused fp32 graph has no CUDA attention kernel "
                      "in ONNX Runtime (fp16 only); export it again to add its CUDA graph")
#: Set to 1 to capture decode steps of fused models as CUDA graphs (models/README.md).
CUDA_GRAPH_ENV = "ONNXCHAT_CUDA_GRAPH"
INT8_CACHE_ON_CPU = "the int8 KV cache runs on the CPU"


@dataclass(frozen=True)
class CpuFold:
    """How a graph opened on the CPU runs: the folded copy's file, or why a graph with Q4_1
    offsets runs without one (both None: nothing to fold, or not on the CPU)."""

    path: Path | None = None
    unfolded: str | None = None


@dataclass
class Model:
    """Everything needed to chat with one model folder. Load with :func:`load_model`."""

    manifest: Manifest
    tokenizer: Tokenizer
    template: ChatTemplate
    decoder: KVDecoder | SharedKVDecoder
    device: DeviceInfo
    load_seconds: float
    #: The graph file in use, relative to the folder (``onnx.graphs`` picks it per device).
    graph: str
    #: Where that graph runs with its Q4_1 offsets folded into the packed weights (a file in
    #: the user's cache, desktop/engine/folding.py); None when it runs as it is.
    folded: Path | None = None
    #: Why a graph with Q4_1 offsets runs on the CPU with them as graph nodes (the line the
    #: log gives); None when they are folded, or there are none, or it runs on CUDA.
    unfolded: str | None = None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def graph_file(self) -> Path:
        """The file the model's session was opened from: the folded copy, else the folder's
        graph."""
        return self.folded or self.manifest.folder / self.graph

    @property
    def kv_cache(self) -> str:
        """The KV cache in use, as ``--kv-cache`` names it: "int8" for the folder's
        int8-cache graph, else "fp32" (fp16 on CUDA)."""
        return "int8" if self.graph == self.manifest.int8_cache[0] else "fp32"

    @property
    def context_length(self) -> int:
        """Positions available: the model's own limit, or the fused layout's KV buffer bound."""
        bound = getattr(self.decoder, "max_length", None)
        return min(self.manifest.context_length, bound or self.manifest.context_length)

    @functools.cached_property
    def max_chars_per_token(self) -> int:
        """The longest token's length: no text of n characters is fewer than n / this tokens
        (byte-level tokens spell bytes, and a character is at least one byte)."""
        return max((len(token) for token in self.tokenizer.get_vocab()), default=1)

    def encode(self, text: str) -> list[int]:
        """Token ids of already-rendered prompt text (special tokens in it are recognised)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids


def _special_token_text(tokenizer: Tokenizer, token_id: object) -> str:
    if isinstance(token_id, int):
        return tokenizer.id_to_token(token_id) or ""
    return ""


def load_model(
    folder: str | Path | Manifest, device: str = "auto", threads: int | None = None,
    verify: bool = False, cuda_graph: bool | None = None, kv_cache: str = "fp32",
) -> Model:
    """Open a model folder. Every problem becomes a :class:`ModelError` naming the file.

    ``cuda_graph`` captures a fused model's decode steps as CUDA graphs when it runs on CUDA:
    one launch per token instead of hundreds (default: on, unless the ``ONNXCHAT_CUDA_GRAPH``
    environment variable is ``0``). ``kv_cache`` "int8" opens the folder's CPU graph with an
    int8 cache (:data:`KV_CACHES`); a folder without one, or ``device`` "cuda", is refused.
    ``folder`` may be its manifest already read, for a caller that chose from it."""
    started = time.perf_counter()
    if kv_cache not in KV_CACHES:
        raise ModelError(f"KV cache '{kv_cache}' is unknown; use one of: {', '.join(KV_CACHES)}")
    check_threads(threads)
    manifest = folder if isinstance(folder, Manifest) else read_manifest(folder)
    if verify:
        problems = verify_files(manifest)
        if problems:
            raise ModelError(f"{problems[0]}; re-export the model")
    tokenizer_path = manifest.folder / manifest.tokenizer_file
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise ModelError(f"{tokenizer_path} is not a valid tokenizer ({exc}); re-export") from None
    template_source = None
    if manifest.chat_template_file:
        template_path = manifest.folder / manifest.chat_template_file
        try:
            template_source = template_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{template_path} cannot be read ({exc}); re-export") from None
    specials = manifest.special_tokens
    template = ChatTemplate(
        template_source,
        bos_token=_special_token_text(tokenizer, specials.get("bos_token_id")),
        eos_token=_special_token_text(tokenizer, specials.get("eos_token_id")),
    )
    if cuda_graph is None:
        cuda_graph = os.environ.get(CUDA_GRAPH_ENV) != "0"
    layout = manifest.raw["onnx"]
    shared = bool(layout.get("past_present_share_buffer"))
    max_length = int(layout.get("max_length") or manifest.context_length)
    decoder: KVDecoder | SharedKVDecoder

    def probe(session: ort.InferenceSession) -> np.ndarray:
        """:func:`folding.probe_logits` through a session of the fp32 graph."""
        if shared:
            return folding.probe_logits(
                SharedKVDecoder(session, "cpu", max_length, len(folding.PROBE_IDS)))
        return folding.probe_logits(KVDecoder(session, "cpu"))

    if kv_cache == "int8":
        decoder, device_info, graph, fold = _open_int8_cache(manifest, device, threads,
                                                             max_length, probe)
    else:
        session, device_info, graph, cuda_graph, fold = _open_graph(
            manifest, device, threads, cuda_graph and shared, probe)
        if shared:
            decoder = SharedKVDecoder(session, device_info.used, max_length,
                                      cuda_graph=cuda_graph)
        else:
            decoder = KVDecoder(session, device_info.used)
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    if decoder.vocab_size is not None and vocab > decoder.vocab_size:
        raise ModelError(
            f"{tokenizer_path} has {vocab} tokens but the ONNX model predicts only "
            f"{decoder.vocab_size}; the tokenizer belongs to another model — re-export"
        )
    bad_stops = [i for i in manifest.stop_token_ids if not 0 <= i < vocab]
    if bad_stops:
        raise ModelError(f"{manifest.folder}/manifest.json: stop token id {bad_stops[0]} "
                         f"is outside the vocabulary ({vocab}); re-export")
    return Model(manifest, tokenizer, template, decoder, device_info,
                 time.perf_counter() - started, graph, fold.path, fold.unfolded)


def _open_cpu(
    path: Path, device: str, threads: int | None, cuda_unsupported: str | None,
    probe: folding.Probe,
) -> tuple[ort.InferenceSession, DeviceInfo, CpuFold]:
    """``path`` on the CPU, with its Q4_1 offsets folded into ONNX Runtime's packed weights
    where it has any (desktop/engine/folding.py), and how it runs; a graph that cannot be
    folded here runs as it is, and the log says why in one line."""
    infos: list[DeviceInfo] = []

    def opener(graph: Path) -> ort.InferenceSession:
        session, info = create_session(graph, device, threads, cuda_unsupported=cuda_unsupported)
        infos.append(info)
        return session

    if folding.enabled() and (device == "cpu" or (device == "auto" and cuda_unsupported)):
        try:
            folded = folding.folded_graph(path, threads or default_threads(), opener, probe)
        except folding.FoldError as exc:
            log.warning("%s runs with its Q4_1 offsets as graph nodes, slower on the CPU: %s",
                        path, exc)
            return opener(path), infos[-1], CpuFold(unfolded=str(exc))
        else:
            if folded is not None:
                return folded[0], infos[-1], CpuFold(path=folded[1])
    session = opener(path)
    return session, infos[-1], CpuFold()


def _open_graph(
    manifest: Manifest, device: str, threads: int | None, cuda_graph: bool,
    probe: folding.Probe,
) -> tuple[ort.InferenceSession, DeviceInfo, str, bool, CpuFold]:
    """The session of the graph ``device`` gets (manifest ``onnx.graphs``), its device, the
    graph's file, whether its decode steps are captured as CUDA graphs, and how a CPU session
    runs (:func:`_open_cpu`). A folder with a graph made for CUDA opens it only
    where CUDA really works; ``auto`` otherwise opens the CPU graph and says why, ``cuda`` is
    refused."""
    graphs = manifest.graphs
    cpu, cuda = graphs["cpu"], graphs.get("cuda")
    folder = manifest.folder
    if cuda is None:
        session, info, fold = _open_cpu(folder / cpu, device, threads, FUSED_FP32_ON_CUDA,
                                        probe)
        return session, info, cpu, False, fold
    if device not in ("auto", "cuda"):  # "cpu", or unknown: create_session says which
        session, info, fold = _open_cpu(folder / cpu, device, threads, None, probe)
        return session, info, cpu, False, fold
    reason = None if cuda == cpu else cuda_unavailable_reason()
    if reason is None:
        path = folder / cuda
        if not path.is_file():
            raise ModelError(f"{path} is missing; re-export the model with `onnxchat export`")
        try:
            session, info = create_session(path, device, threads, cuda_graph=cuda_graph)
        except ModelError as exc:
            if cuda_graph:
                # Capture needs every node on CUDA; plain CUDA steps still beat the CPU.
                log.warning("CUDA graph capture is off for %s: %s", path, exc)
                return _open_graph(manifest, device, threads, False, probe)
            if device == "cuda" or cuda == cpu:
                raise
            reason = f"CUDA not used: {exc}"
        else:
            if info.used == "cuda" or cuda == cpu:
                return session, info, cuda, cuda_graph and info.used == "cuda", CpuFold()
            reason = info.reason
    elif device == "cuda":
        raise ModelError(f"{reason}; use --device auto or --device cpu to run on the CPU")
    session, info, fold = _open_cpu(folder / cpu, device, threads, reason, probe)
    return session, info, cpu, False, fold


def _open_int8_cache(
    manifest: Manifest, device: str, threads: int | None, max_length: int,
    probe: folding.Probe,
) -> tuple[Int8CacheDecoder, DeviceInfo, str, CpuFold]:
    """The decoder of the folder's CPU graph with an int8 KV cache, its device, file and how
    it runs (:func:`_open_cpu`). Long prompts are read through the fp32 CPU graph (``probe``
    checks its folded form), opened for each (:class:`Int8CacheDecoder`)."""
    graph = manifest.require_int8_cache()
    if device == "cuda":
        raise ModelError(f"{INT8_CACHE_ON_CPU}; use --device auto or --device cpu, "
                         "or --kv-cache fp32 to run on CUDA")
    rotation_name = manifest.int8_cache_rotation
    paths = [manifest.folder / name
             for name in (graph, manifest.int8_cache_scales, manifest.graphs["cpu"],
                          *([rotation_name] if rotation_name else []))]
    for path in paths:
        if not path.is_file():
            raise ModelError(f"{path} is missing; re-export the model with `onnxchat export`")
    path, scales_path, cpu_path = paths[:3]
    scales = _load_array(scales_path)
    rotation = _load_array(paths[3]) if rotation_name else None
    opened: Path | None = None  # the file the first long prompt opened (folded, and checked)

    def open_prompt_session() -> ort.InferenceSession:
        nonlocal opened
        if opened is not None:
            return create_session(opened, "cpu", threads)[0]
        session, _, fold = _open_cpu(cpu_path, "cpu", threads, None, probe)
        opened = fold.path or cpu_path
        return session

    def probe_int8(session: ort.InferenceSession) -> np.ndarray:
        return folding.probe_logits(Int8CacheDecoder(session, open_prompt_session, scales,
                                                     max_length, rotation))

    session, info, fold = _open_cpu(path, device, threads, INT8_CACHE_ON_CPU, probe_int8)
    return (Int8CacheDecoder(session, open_prompt_session, scales, max_length, rotation), info,
            graph, fold)


def _load_array(path: Path) -> np.ndarray:
    """The ``.npy`` array at ``path``; :class:`ModelError` when it cannot be read."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ModelError(f"{path} cannot be read ({exc}); re-export the model") from None
