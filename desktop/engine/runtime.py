"""ONNX Runtime sessions: device choice, quiet native logs, and the KV-cache decoder.

The decoder reads input/output names and KV shapes from the session, not from assumptions,
because GPT-2 and Llama exports differ (``position_ids``, head counts, grouped KV heads).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from desktop.errors import ModelError

DEVICES = ("auto", "cuda", "cpu")
ort.set_default_logger_severity(3)  # errors only; and those are captured, see below
if hasattr(ort, "disable_telemetry_events"):
    ort.disable_telemetry_events()  # an offline app sends nothing, not even onnxruntime's events


@dataclass(frozen=True)
class DeviceInfo:
    """What the user asked for, what runs, and (if not CUDA) the one-line reason why."""

    requested: str
    used: str
    reason: str | None
    providers: tuple[str, ...]

    @property
    def worth_telling(self) -> bool:
        """Whether the reason is worth a line to the user: an NVIDIA GPU is there but not
        used, or CUDA was asked for. On a machine without one, "CUDA not used" is noise."""
        return self.reason is not None and (self.requested == "cuda" or nvidia_gpu_present())

    def describe(self) -> str:
        text = "CUDA" if self.used == "cuda" else "CPU"
        return f"{text} ({self.reason})" if self.worth_telling else text


@functools.cache
def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU, decided offline in microseconds from what the
    driver installs (no CUDA library is loaded): its device files or /proc entries on Linux,
    its library in WSL, its ``nvcuda.dll`` on Windows. macOS has no CUDA."""
    if sys.platform == "win32":
        system = Path(os.environ.get("SYSTEMROOT", r"C:\Windows")) / "System32"
        return (system / "nvcuda.dll").is_file()
    if sys.platform.startswith("linux"):
        gpus = Path("/proc/driver/nvidia/gpus")
        with contextlib.suppress(OSError):
            if gpus.is_dir() and any(gpus.iterdir()):
                return True
        return (any(Path("/dev").glob("nvidia[0-9]*"))
                or Path("/usr/lib/wsl/lib/libcuda.so.1").exists())
    return False


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 so onnxruntime's native (red) error lines do not reach the
    terminal or the GUI's log; the captured text is appended to the yielded list."""
    sink: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))


def cuda_failure_reason(native_log: str) -> str:
    """Turn onnxruntime's CUDA loading errors into one human line."""
    if re.search(r"onnxruntime_providers_cuda\.so: cannot open shared object file", native_log):
        # The packaged app leaves the 284 MB provider out (see packaging/README.md).
        return ("CUDA unavailable: this packaged build leaves out onnxruntime's CUDA provider "
                "— install onnxchat with pip to use the GPU")
    # The library named right before the error, not the provider that failed to load it.
    missing = re.search(r"(lib[\w.+-]+?\.so[\w.]*): cannot open shared object file", native_log)
    if missing:
        return (
            f"CUDA unavailable: {missing.group(1)} not found — install the CUDA and cuDNN "
            "runtime (pip install 'onnxruntime-gpu[cuda,cudnn]')"
        )
    dll = re.search(r"([\w.-]+\.dll)", native_log)
    if dll:
        return f"CUDA unavailable: {dll.group(1)} could not be loaded — install the CUDA runtime"
    lines = [ln.strip() for ln in native_log.splitlines() if ln.strip()]
    detail = re.sub(r"^.*?\] ", "", lines[-1])[:160] if lines else "no CUDA device found"
    return f"CUDA unavailable: {detail}"


def default_threads() -> int:
    """Physical cores are what matter for matrix work; leave the UI one when there are many."""
    count = os.cpu_count() or 2
    return count if count <= 4 else count - 1


def check_threads(threads: int | None) -> None:
    """Refuse a thread count ONNX Runtime cannot use, before anything is opened with it (a
    folded copy's build would otherwise fail on it and be reported as a folding problem)."""
    if threads is not None and not 1 <= threads <= 256:
        raise ModelError(f"threads = {threads} is out of range: valid is [1, 256]")


def create_session(
    path: Path | bytes, device: str = "auto", threads: int | None = None,
    cuda_unsupported: str | None = None, cuda_graph: bool = False, prepack: bool = True,
) -> tuple[ort.InferenceSession, DeviceInfo]:
    """Open ``path`` (or a serialized model) on the requested device. ``auto`` takes CUDA
    only when the CUDA provider really creates the session; otherwise CPU with the reason.
    ``cuda_unsupported`` says why this model must not run on CUDA at all (then ``auto`` means
    CPU, and ``cuda`` is refused). ``cuda_graph`` turns on ONNX Runtime's CUDA graph capture
    (see :class:`SharedKVDecoder`). ``prepack`` False leaves weights as stored instead of
    repacking them for the CPU kernels at load (``onnxchat bench --export-size`` measures
    both: packing costs load time and a copy of the weights, but ``MatMulNBits`` decodes
    ~30x slower without it, so the app always packs)."""
    if device not in DEVICES:
        raise ModelError(f"device '{device}' is unknown; use one of: {', '.join(DEVICES)}")
    check_threads(threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Worker threads spin between the operators of a step (turning spinning off costs a third
    # of decode speed on 2 cores) but stop when the step ends: otherwise they keep cores busy
    # after every run, slowing the window and whatever else runs (measured in models/README.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")

    if cuda_unsupported and device == "cuda":
        raise ModelError(f"{cuda_unsupported}; use --device auto or --device cpu")
    want_cuda = device in ("auto", "cuda") and not cuda_unsupported
    reason = cuda_unsupported if device == "auto" else None
    providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
    if want_cuda:
        if "CUDAExecutionProvider" in ort.get_available_providers():
            cuda_options = {"enable_cuda_graph": "1"} if cuda_graph else {}
            providers = [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
        else:
            reason = "CUDA unavailable: this onnxruntime build has no CUDA support"

    with captured_native_stderr() as log:
        try:
            if len(providers) > 1 and hasattr(ort, "preload_dlls"):
                # Finds CUDA/cuDNN installed from PyPI; it reports what is missing on stdout.
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed), contextlib.suppress(Exception):
                    ort.preload_dlls()
                log.append(printed.getvalue())
            model = path if isinstance(path, bytes) else str(path)
            session = ort.InferenceSession(model, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            error = exc
        else:
            error = None
    if error is not None:
        raise ModelError(_load_error_line(path, error)) from None

    used = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
    if want_cuda and used == "cpu" and reason is None:
        reason = cuda_failure_reason("".join(log))
    if device == "cuda" and used != "cuda":
        raise ModelError(f"{reason}; use --device auto or --device cpu to run on the CPU")
    return session, DeviceInfo(device, used, reason if used == "cpu" else None,
                               tuple(session.get_providers()))


# A one-node model (Identity, float[1]) serialized by onnx.helper: creating a session of it
# tells whether the CUDA provider loads here, in milliseconds and without the onnx package.
_PROBE_MODEL = bytes.fromhex(
    "08083a3b0a100a017812017922084964656e74697479120570726f62655a0f0a0178120a0a0808011204"
    "0a020801620f0a0179120a0a08080112040a02080142040a001011"
)


@functools.cache
def cuda_unavailable_reason() -> str | None:
    """The one-line reason CUDA cannot run here, or None when it can. Asked before opening a
    graph made for CUDA, so a machine without a working GPU does not load that graph first."""
    return create_session(_PROBE_MODEL, "auto", threads=1)[1].reason


def _load_error_line(path: Path | bytes, error: Exception) -> str:
    text = str(error)
    if "Protobuf parsing failed" in text or "INVALID_PROTOBUF" in text or "ModelProto" in text:
        return f"{path} is not a valid ONNX model (truncated or corrupt); re-export the model"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"{path} could not be loaded by ONNX Runtime: {first[:200]}; re-export the model"


#: KV cache element types the decoders allocate: fp32, the CUDA graph's fp16, and the int8
#: cache of a CPU graph whose attention quantizes keys and values (models/README.md).
_CACHE_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(int8)": np.int8}


@dataclass(frozen=True)
class DecoderIO:
    """The names and shapes a decoder session exposes, checked to be a causal LM with a cache."""

    inputs: tuple[str, ...]
    past_names: list[str]
    present_names: list[str]
    kv_heads: int
    head_dim: int
    kv_dtype: type
    vocab_size: int | None

    @classmethod
    def read(cls, session: ort.InferenceSession) -> DecoderIO:
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name: o for o in session.get_outputs()}
        past = sorted((n for n in inputs if n.startswith("past_key_values.")), key=_layer_key)
        if "input_ids" not in inputs or "logits" not in outputs or not past:
            raise ModelError(
                "the ONNX model is not a causal language model with a KV cache "
                f"(inputs: {', '.join(inputs)}); export it with `onnxchat export`"
            )
        present = [n.replace("past_key_values.", "present.", 1) for n in past]
        missing = [n for n in present if n not in outputs]
        if missing:
            raise ModelError(
                f"the ONNX model has past inputs but no {missing[0]} output; re-export it"
            )
        first = inputs[past[0]]
        if not all(isinstance(first.shape[d], int) for d in (1, 3)):
            raise ModelError("the ONNX model's KV cache has no fixed head count or head size; "
                             "re-export it")
        kv_dtype = _CACHE_TYPES.get(first.type)
        if kv_dtype is None:
            raise ModelError(f"the ONNX model's KV cache is of type {first.type}, which "
                             "OnnxChat does not run; re-export it")
        vocab = outputs["logits"].shape[-1]
        return cls(tuple(inputs), past, present, int(first.shape[1]), int(first.shape[3]),
                   kv_dtype, vocab if isinstance(vocab, int) else None)


class KVDecoder:
    """Runs the decoder one chunk at a time and keeps the KV cache between calls.

    Works with Optimum's ``text-generation-with-past`` layout: ``past_key_values.N.key/value``
    in, ``present.N.key/value`` out (past length + new tokens). The cache is held as
    OrtValues (on the GPU when running on CUDA) and fed back without converting to numpy.
    """

    def __init__(self, session: ort.InferenceSession, device: str = "cpu") -> None:
        self.session = session
        io = DecoderIO.read(session)
        self.past_names, self.present_names = io.past_names, io.present_names
        self.kv_heads, self.head_dim, self.vocab_size = io.kv_heads, io.head_dim, io.vocab_size
        self.kv_dtype = io.kv_dtype
        self.uses_position_ids = "position_ids" in io.inputs
        self.uses_attention_mask = "attention_mask" in io.inputs
        self.device = device
        self._ort_device = "cuda" if device == "cuda" else "cpu"
        self._binding = session.io_binding()
        self._past: list[ort.OrtValue] = []
        self.length = 0
        self.reset()

    def reset(self) -> None:
        """Forget the cache (a new conversation)."""
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=self.kv_dtype)
        self._past = [self._to_device(empty) for _ in self.past_names]
        self.length = 0

    def _to_device(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self._ort_device, 0)

    def forward(self, token_ids: list[int] | np.ndarray,
                run_options: ort.RunOptions | None = None) -> np.ndarray:
        """Feed ``token_ids`` after the cached ones; return the last position's logits.
        ``run_options`` lets another thread stop the run (``terminate``): it then raises and
        the cache is as it was."""
        ids = np.asarray(token_ids, dtype=np.int64).reshape(1, -1)
        count = ids.shape[1]
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        binding.bind_cpu_input("input_ids", ids)
        if self.uses_attention_mask:
            binding.bind_cpu_input("attention_mask", np.ones((1, self.length + count), np.int64))
        if self.uses_position_ids:
            positions = np.arange(self.length, self.length + count, dtype=np.int64)
            binding.bind_cpu_input("position_ids", positions.reshape(1, -1))
        for name, value in zip(self.past_names, self._past, strict=False):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits", "cpu")
        for name in self.present_names:
            binding.bind_output(name, self._ort_device)
        self.session.run_with_iobinding(binding, run_options)
        results = binding.get_outputs()
        self._past = list(results[1:])
        self.length += count
        return results[0].numpy()[0, -1]

    def rewind(self, length: int) -> None:
        """Keep only the first ``length`` cached positions (a shared prefix with a new prompt)."""
        if length >= self.length:
            return
        if length == 0:
            self.reset()
            return
        self._past = [self._to_device(v.numpy()[:, :, :length, :]) for v in self._past]
        self.length = length


def _layer_key(name: str) -> tuple[int, int]:
    parts = name.split(".")
    return int(parts[1]), 0 if parts[2] == "key" else 1


class SharedKVDecoder:
    """Drives the fused layout (models/README.md, "Fused layout"): one preallocated KV buffer
    per layer, bound as both past input and present output, so no step copies the cache.

    GroupQueryAttention reads the valid length from the attention mask and writes the new keys
    and values in place. The buffers live on the session's device in the graph's cache type
    (fp16 for the CUDA graph); they start small and double when a conversation outgrows them
    (the only copy), up to ``max_length``; rewinding is just forgetting positions. A step
    allocates nothing: the mask is bound as a view of a preallocated row of ones on the
    device, and the logits (the last position's row only) land in a preallocated buffer,
    which on CUDA is the one thing copied back.

    ``static_decode`` runs one-token steps with fixed shapes and addresses: the token id and a
    mask as long as the buffers (ones for the positions so far, zeros after) are written into
    preallocated buffers. ONNX Runtime's CUDA graph capture needs exactly that: with
    ``cuda_graph`` the session (opened with capture on) records the step once per buffer size
    and then replays it as one launch, while prompts run uncaptured. On the CPU the same
    static path runs without capture.
    """

    def __init__(self, session: ort.InferenceSession, device: str, max_length: int,
                 initial_capacity: int = 512, *, static_decode: bool = False,
                 cuda_graph: bool = False) -> None:
        self.session = session
        io = DecoderIO.read(session)
        if io.vocab_size is None or "attention_mask" not in io.inputs:
            raise ModelError("the ONNX model does not have the fused layout its manifest "
                             "claims (fixed vocabulary, attention_mask); re-export it")
        self.past_names, self.present_names = io.past_names, io.present_names
        self.kv_heads, self.head_dim, self.vocab_size = io.kv_heads, io.head_dim, io.vocab_size
        self.kv_dtype = io.kv_dtype
        self.device = device
        self.max_length = max_length
        self.cuda_graph = cuda_graph and device == "cuda"
        self.static_decode = static_decode or self.cuda_graph
        self._ort_device = "cuda" if device == "cuda" else "cpu"
        self._ones = ort.OrtValue.ortvalue_from_numpy(np.ones((1, max_length), np.int64),
                                                      self._ort_device, 0)
        self._binding = session.io_binding()
        bindings = [self._binding]
        self._prompt_options: ort.RunOptions | None = None
        self._step_options: ort.RunOptions | None = None
        self._graphs = 0
        if self.static_decode:
            self._step_binding = session.io_binding()
            bindings.append(self._step_binding)
            self._step_ids = ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 1), np.int64),
                                                              self._ort_device, 0)
            self._step_binding.bind_ortvalue_input("input_ids", self._step_ids)
        if self.cuda_graph:
            self._prompt_options = ort.RunOptions()
            self._prompt_options.add_run_config_entry("gpu_graph_id", "-1")  # not captured
        logits_shape = [1, 1, self.vocab_size]
        if self._ort_device == "cpu":
            self._logits_host = np.zeros(logits_shape, np.float32)
            for binding in bindings:
                binding.bind_output("logits", "cpu", 0, np.float32, logits_shape,
                                    self._logits_host.ctypes.data)
        else:
            self._logits = ort.OrtValue.ortvalue_from_shape_and_type(
                logits_shape, np.float32, self._ort_device, 0)
            for binding in bindings:
                binding.bind_ortvalue_output("logits", self._logits)
        self._buffers: list[ort.OrtValue] = []
        self._mask_host = np.zeros((1, 0), np.int64)  # the static mask's contents
        self.capacity = 0
        self.length = 0
        self._allocate(min(initial_capacity, max_length))

    def _allocate(self, capacity: int) -> None:
        """(Re)bind KV buffers of ``capacity`` positions, keeping the cached ones."""
        shape = (1, self.kv_heads, capacity, self.head_dim)
        new, hosts = [], []
        for old in self._buffers or [None] * len(self.past_names):
            host = np.zeros(shape, self.kv_dtype)
            if old is not None and self.length:
                host[:, :, : self.length] = old.numpy()[:, :, : self.length]
            new.append(ort.OrtValue.ortvalue_from_numpy(host, self._ort_device, 0))
            hosts.append(host)
        self._buffers = new
        # On the CPU the OrtValues wrap these arrays: the cache itself, readable and writable.
        self._hosts = hosts if self._ort_device == "cpu" else []
        self.capacity = capacity
        bindings = [self._binding, self._step_binding] if self.static_decode else [self._binding]
        for binding in bindings:
            for past, present, value in zip(self.past_names, self.present_names, new,
                                            strict=True):
                binding.bind_ortvalue_input(past, value)
                binding.bind_ortvalue_output(present, value)
        if self.static_decode:
            mask = np.zeros((1, capacity), np.int64)
            mask[:, : self.length] = 1
            self._mask_host = mask
            self._step_mask = ort.OrtValue.ortvalue_from_numpy(mask, self._ort_device, 0)
            self._step_binding.bind_ortvalue_input("attention_mask", self._step_mask)
        if self.cuda_graph:
            # New addresses: a new captured graph (ids from 1; 0 is reserved, -1 is "none").
            self._graphs += 1
            self._step_options = ort.RunOptions()
            self._step_options.add_run_config_entry("gpu_graph_id", str(self._graphs))

    def _make_room(self, total: int) -> None:
        """Grow the buffers to hold ``total`` positions (doubling, up to ``max_length``)."""
        if total > self.max_length:
            raise ValueError("the model's context is full")
        if total > self.capacity:
            self._allocate(min(self.max_length, max(total, self.capacity * 2)))

    def reset(self) -> None:
        self.rewind(0)

    def rewind(self, length: int) -> None:
        self.length = max(0, min(length, self.length))
        if self.static_decode:
            self._mask_host[:, self.length :] = 0

    def forward(self, token_ids: list[int] | np.ndarray,
                run_options: ort.RunOptions | None = None) -> np.ndarray:
        """As :meth:`KVDecoder.forward`; a stopped prompt leaves the cache's length as it was
        (what it wrote past it is never read)."""
        ids = np.asarray(token_ids, dtype=np.int64).reshape(1, -1)
        total = self.length + ids.shape[1]
        self._make_room(total)
        if self.static_decode:
            self._mask_host[:, self.length : total] = 1
        if self.static_decode and ids.shape[1] == 1:
            self._step_ids.update_inplace(ids)
            self._step_mask.update_inplace(self._mask_host)
            self.session.run_with_iobinding(self._step_binding, self._step_options)
        else:
            self._binding.bind_cpu_input("input_ids", ids)
            self._binding.bind_input("attention_mask", self._ort_device, 0, np.int64,
                                     [1, total], self._ones.data_ptr())
            if run_options is not None and self._prompt_options is not None:
                run_options.add_run_config_entry("gpu_graph_id", "-1")  # not captured
            self.session.run_with_iobinding(self._binding, run_options or self._prompt_options)
        self.length = total
        if self._ort_device == "cpu":
            return self._logits_host[0, -1].copy()
        return self._logits.numpy()[0, -1]


#: A prompt is read through the fp32 CPU graph when the cache is int8 and tokens x (cached +
#: tokens) reach this many: the int8 kernel's prompt time follows that product (about 0.9 us
#: each on the README's machine, at any context), and from here on it exceeds what opening
#: the fp32 graph (~0.5 s) and converting the cache take (models/README.md, "The int8 KV
#: cache"; 1,000 tokens into an empty chat, 236 after 4,000 tokens).
INT8_PROMPT_PAIRS = 1_000_000


class Int8CacheDecoder(SharedKVDecoder):
    """The fused layout over the CPU graph whose attention keeps an int8 cache, with one
    fixed scale per key and value channel (export/int8_cache.py).

    ONNX Runtime's int8 attention decodes fast but reads a prompt one query row at a time,
    up to 2.6 times slower than the fp32 graph's matrix-multiply routine at 4,096 tokens. So
    a long prompt (:data:`INT8_PROMPT_PAIRS`) is read by the fp32 CPU graph over the cache
    converted to fp32, and the keys and values it writes are rounded to int8 codes exactly as
    the int8 kernel rounds its own (times the inverse scale, to nearest, clipped): the cache
    then holds what the int8 graph writes for those keys and values. The fp32 graph's
    session (``open_prompt_session``) and the fp32 copy of the cache live only while such a
    prompt is read, so the int8 cache's memory saving holds between long prompts.

    The graph caches each head's values times an orthogonal ``rotation`` (``[head_dim,
    head_dim]``; None for graphs exported before it, which cache them as they are), so the
    values are rotated back for the fp32 graph and the fp32 graph's are rotated before they
    are rounded.
    """

    def __init__(self, session: ort.InferenceSession,
                 open_prompt_session: Callable[[], ort.InferenceSession],
                 scales: np.ndarray, max_length: int,
                 rotation: np.ndarray | None = None) -> None:
        super().__init__(session, "cpu", max_length)
        layers = len(self.past_names) // 2
        want = (layers, 2, self.kv_heads * self.head_dim)
        if (scales.shape != want or scales.dtype != np.float32
                or not (np.isfinite(scales).all() and (scales > 0).all())):
            raise ModelError(f"the int8 cache's scales are {scales.dtype}{list(scales.shape)}, "
                             f"not positive float32{list(want)}; re-export the model")
        per_channel = scales.reshape(layers * 2, 1, self.kv_heads, 1, self.head_dim)
        self._scales = list(per_channel)  # in the order of past_names: layer by layer, k, v
        self._inverse = [np.float32(1) / scale for scale in self._scales]
        if rotation is not None and (
                rotation.shape != (self.head_dim, self.head_dim) or rotation.dtype != np.float32
                or not np.allclose(rotation @ rotation.T, np.eye(self.head_dim), atol=1e-5)):
            raise ModelError(f"the int8 cache's value rotation is {rotation.dtype}"
                             f"{list(rotation.shape)}, not an orthogonal float32"
                             f"{[self.head_dim, self.head_dim]}; re-export the model")
        # per buffer, in the order of past_names: None for keys, the rotation for values
        self._rotations = [None, rotation] * layers
        self._open_prompt_session = open_prompt_session

    def forward(self, token_ids: list[int] | np.ndarray,
                run_options: ort.RunOptions | None = None) -> np.ndarray:
        ids = np.asarray(token_ids, dtype=np.int64).reshape(1, -1)
        past, total = self.length, self.length + ids.shape[1]
        if ids.shape[1] * total < INT8_PROMPT_PAIRS:
            return super().forward(ids, run_options)
        self._make_room(total)
        prompt = SharedKVDecoder(self._prompt_session(), "cpu", self.max_length,
                                 initial_capacity=total)
        for codes, values, scale, rotation in zip(self._hosts, prompt._hosts, self._scales,
                                                  self._rotations, strict=True):
            np.multiply(codes[:, :, :past], scale, out=values[:, :, :past])
            if rotation is not None and past:
                values[:, :, :past] = values[:, :, :past] @ rotation.T
        prompt.length = past
        logits = prompt.forward(ids, run_options)
        for codes, values, inverse, rotation in zip(self._hosts, prompt._hosts, self._inverse,
                                                    self._rotations, strict=True):
            fresh = values[:, :, past:total]
            if rotation is not None:
                fresh = fresh @ rotation
            codes[:, :, past:total] = np.clip(np.rint(fresh * inverse), -128, 127)
        self.length = total
        return logits

    def _prompt_session(self) -> ort.InferenceSession:
        """The fp32 CPU graph's session, checked to keep the same cache in fp32."""
        session = self._open_prompt_session()
        fp32 = DecoderIO.read(session)
        if (fp32.past_names != self.past_names or fp32.kv_dtype != np.float32
                or (fp32.kv_heads, fp32.head_dim) != (self.kv_heads, self.head_dim)):
            raise ModelError("the int8-cache graph does not match the folder's CPU graph; "
                             "re-export the model")
        return session
