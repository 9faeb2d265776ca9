"""llama.cpp as a benchmark comparator, in a child process.

Why a child process: a llama.cpp build can crash on a CPU (natively built ones have died on
multi-token batches on AVX-512 and AMX machines, in ggml's AMX kernel on the latter). In a
child, a crash is seen as the child's death and reported with its signal; it never takes the
benchmark down, and the benchmark never swaps in another build behind the user's back. A
child can feed prompts one token at a time (``prompt_batch=1``), so that a build that dies
only on multi-token batches still has its decode steps measured.

Why the low-level API: the comparator should run at llama.cpp's best, so each step is one
``llama_decode`` and one persistent greedy sampler, as llama.cpp's own examples do, not
llama-cpp-python's high-level loop (which builds a sampler chain per token).

Protocol: one JSON object per line. The child first writes ``{"ready": ...}`` with its build
facts, then answers each request on stdin with one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from desktop.errors import UserError
from desktop.hugepages import user_environment

#: CPU features llama.cpp's system info names, against the names used by desktop.cpuinfo.
SYSTEM_INFO_FEATURES = {
    "AVX2": "AVX2",
    "AVX512": "AVX-512F",
    "AVX512_VNNI": "AVX-512 VNNI",
    "AVX_VNNI": "AVX-VNNI",
    "AVX512_BF16": "AVX-512 BF16",
    "AMX_INT8": "AMX",
}


class ComparatorFailed(Exception):
    """The llama.cpp child died or refused a request; the message says how and during what."""


def build_features(system_info: str) -> set[str]:
    """The ISA features a llama.cpp build was compiled for, from ``llama_print_system_info``
    (``AVX2 = 1 | AVX512 = 1 | …``), in desktop.cpuinfo's names."""
    enabled = set()
    for part in system_info.replace("\n", "|").split("|"):
        key, _, value = part.partition("=")
        key = key.strip().split(":")[-1].strip()
        if value.strip() == "1" and key in SYSTEM_INFO_FEATURES:
            enabled.add(SYSTEM_INFO_FEATURES[key])
    return enabled


#: Tokens per ``llama_decode`` call when reading a prompt: llama.cpp's default batch.
PROMPT_BATCH = 512


class LlamaCppWorker:
    """The parent's handle on one llama.cpp model in a child process."""

    def __init__(self, gguf: str, threads: int, n_ctx: int, flash_attn: int = -1,
                 kv_type: str = "f16", prompt_batch: int = PROMPT_BATCH) -> None:
        self.flash_attn = flash_attn
        self.kv_type = kv_type
        self.prompt_batch = prompt_batch
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "desktop.llama_worker", gguf, str(threads), str(n_ctx),
             str(flash_attn), kv_type, str(prompt_batch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=user_environment(),  # llama.cpp as its users run it: not in our huge pages
        )
        self.pid = self._proc.pid
        self.info: dict[str, Any] = self._read("loading the model")
        if "error" in self.info:
            self.close()
            raise UserError(f"llama.cpp could not load {gguf}: {self.info['error']}")

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _read(self, doing: str) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            raise ComparatorFailed(self._death(code, doing))
        return json.loads(line)

    def _death(self, code: int, doing: str) -> str:
        how = f"exit status {code}"
        if code < 0:
            try:
                how = signal.Signals(-code).name
            except ValueError:
                how = f"signal {-code}"
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-1:]
        detail = f" ({tail[0][:160]})" if tail else ""
        return f"llama.cpp crashed with {how} while {doing}{detail}"

    def request(self, doing: str, **message: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps(message) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise ComparatorFailed(self._death(self._proc.wait(), doing)) from None
        reply = self._read(doing)
        if "error" in reply:
            raise ComparatorFailed(f"llama.cpp failed while {doing}: {reply['error']}")
        return reply

    def run(self, ids: Sequence[int], new_tokens: int) -> tuple[float, float]:
        """Prefill ``ids`` on an empty cache, then ``new_tokens`` greedy steps: tokens/s."""
        reply = self.request(f"running a {len(ids)}-token prompt", op="run",
                             ids=[int(i) for i in ids], new=new_tokens)
        return len(ids) / reply["prefill_s"], new_tokens / reply["decode_s"]

    def prefill(self, ids: Sequence[int]) -> float:
        reply = self.request(f"prefilling {len(ids)} tokens", op="prefill",
                             ids=[int(i) for i in ids])
        return len(ids) / reply["prefill_s"]

    def decode_after(self, length: int, new_tokens: int) -> float:
        """Greedy decode speed after the first ``length`` prefilled tokens (kept between calls:
        each call rewinds to them)."""
        reply = self.request(f"decoding after {length} tokens", op="decode_after",
                             length=length, new=new_tokens)
        return new_tokens / reply["decode_s"]

    def logits(self) -> list[float]:
        """The logits after the last decoded token."""
        return list(self.request("reading the logits", op="logits")["logits"])

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


# ------------------------------------------------------------------------------------------
# The child
# ------------------------------------------------------------------------------------------


class _Llama:
    """One model and context driven through llama.cpp's C API."""

    def __init__(self, path: str, threads: int, n_ctx: int, flash_attn: int,
                 kv_type: str = "f16", prompt_batch: int = PROMPT_BATCH) -> None:
        import llama_cpp as lc

        self.lc = lc
        self.prompt_batch = prompt_batch
        lc.llama_backend_init()
        started = time.perf_counter()
        self.model = lc.llama_model_load_from_file(path.encode(), lc.llama_model_default_params())
        if not self.model:
            raise RuntimeError("not a model llama.cpp can read")
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = PROMPT_BATCH
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = flash_attn
        params.type_k = params.type_v = _KV_TYPES[kv_type]
        self.params = params
        self.ctx = lc.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.load_s = time.perf_counter() - started
        self.sampler = lc.llama_sampler_init_greedy()
        self.memory = lc.llama_get_memory(self.ctx)
        self.tokens: list[int] = []
        self._one = (lc.llama_token * 1)()

    def _decode(self, ids: Sequence[int]) -> None:
        lc = self.lc
        for start in range(0, len(ids), self.prompt_batch):
            chunk = ids[start:start + self.prompt_batch]
            array = (lc.llama_token * len(chunk))(*chunk)
            if lc.llama_decode(self.ctx, lc.llama_batch_get_one(array, len(chunk))) != 0:
                raise RuntimeError(f"llama_decode failed after {len(self.tokens)} tokens")
            self.tokens.extend(chunk)

    def _clear(self) -> None:
        self.lc.llama_memory_clear(self.memory, True)
        self.tokens = []

    def _greedy(self, count: int) -> float:
        lc = self.lc
        started = time.perf_counter()
        for _ in range(count):
            token = lc.llama_sampler_sample(self.sampler, self.ctx, -1)
            self._one[0] = token
            if lc.llama_decode(self.ctx, lc.llama_batch_get_one(self._one, 1)) != 0:
                raise RuntimeError(f"llama_decode failed after {len(self.tokens)} tokens")
            self.tokens.append(token)
        return time.perf_counter() - started

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op in ("run", "prefill"):
            self._clear()
            started = time.perf_counter()
            self._decode(request["ids"])
            reply = {"prefill_s": time.perf_counter() - started}
            if op == "run":
                reply["decode_s"] = self._greedy(request["new"])
            return reply
        if op == "decode_after":
            length = request["length"]
            if not 0 < length <= len(self.tokens):
                raise RuntimeError(f"only {len(self.tokens)} tokens are cached")
            prefix = self.tokens[:length]
            self.lc.llama_memory_seq_rm(self.memory, 0, length - 1, -1)
            self.tokens = prefix[:-1]
            self._decode(prefix[-1:])  # the logits after the prefix, untimed
            return {"decode_s": self._greedy(request["new"])}
        if op == "logits":  # of the last position, to check both runtimes hold one model
            vocab = self.lc.llama_vocab_n_tokens(self.lc.llama_model_get_vocab(self.model))
            row = self.lc.llama_get_logits_ith(self.ctx, -1)
            return {"logits": [float(row[i]) for i in range(vocab)]}
        raise RuntimeError(f"unknown request {op!r}")

    def facts(self) -> dict[str, Any]:
        lc = self.lc
        return {
            "version": getattr(lc, "__version__", "unknown"),
            "system_info": lc.llama_print_system_info().decode("utf-8", "replace").strip(),
            "load_s": self.load_s,
            "flash_attn_type": int(self.params.flash_attn_type),
            "kv_type": {v: k for k, v in _KV_TYPES.items()}.get(int(self.params.type_k),
                                                                str(self.params.type_k)),
        }


def _write(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write((json.dumps(message) + "\n").encode())
    out.flush()


#: llama.cpp's KV cache types by name (ggml type ids); f16 is its default, q8_0 needs flash
#: attention for the values.
_KV_TYPES = {"f32": 0, "f16": 1, "q8_0": 8, "bf16": 30}


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m desktop.llama_worker GGUF THREADS N_CTX FLASH_ATTN
    [KV_TYPE [PROMPT_BATCH]]`` (flash attention: -1 auto, llama.cpp's default; 0 off; 1 on;
    the KV cache type: f16, llama.cpp's default, or q8_0, f32, bf16; tokens per
    ``llama_decode`` call when reading a prompt, 512 unless said)."""
    # llama.cpp logs to the standard streams; keep fd 1 for the protocol alone.
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    path, threads, n_ctx, flash_attn = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    kv_type = argv[4] if len(argv) > 4 else "f16"
    prompt_batch = int(argv[5]) if len(argv) > 5 else PROMPT_BATCH
    try:
        llama = _Llama(path, threads, n_ctx, flash_attn, kv_type, prompt_batch)
    except Exception as exc:  # any failure to load is reported as one line
        _write(protocol, {"error": str(exc) or type(exc).__name__})
        return 1
    _write(protocol, {"ready": True, **llama.facts()})
    for line in sys.stdin:
        try:
            reply = llama.handle(json.loads(line))
        except Exception as exc:  # reported to the parent, which raises it as a failure
            reply = {"error": str(exc) or type(exc).__name__}
        _write(protocol, reply)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
