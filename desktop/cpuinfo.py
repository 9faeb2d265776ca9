"""The CPU's model name and the instruction-set extensions that decide matrix-kernel speed.

Benchmarks on CPUs are only comparable when the ISA is known: AVX-512 and VNNI change which
kernels both ONNX Runtime and llama.cpp run. Linux reports the flags in ``/proc/cpuinfo``
(also the ones a hypervisor hides are absent there, which is what matters); elsewhere numpy's
own CPU dispatch table is asked, which does not know AVX-VNNI or AMX (reported as unknown).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

#: Feature name → /proc/cpuinfo flags that all must be present.
LINUX_FLAGS = {
    "AVX2": ("avx2", "fma"),
    "AVX-512F": ("avx512f",),
    "AVX-512 VNNI": ("avx512_vnni",),
    "AVX-VNNI": ("avx_vnni",),
    "AVX-512 BF16": ("avx512_bf16",),
    "AMX": ("amx_tile", "amx_int8"),
}
#: Feature name → numpy __cpu_features__ key (None: numpy does not report it).
NUMPY_FLAGS = {
    "AVX2": "AVX2", "AVX-512F": "AVX512F", "AVX-512 VNNI": "AVX512VNNI", "AVX-VNNI": None,
    "AVX-512 BF16": "AVX512BF16", "AMX": None,
}


@dataclass(frozen=True)
class CpuIsa:
    """``features`` maps each name of :data:`LINUX_FLAGS` to True, False or None (unknown)."""

    model: str
    cores: int | None
    features: dict[str, bool | None]

    def present(self) -> set[str]:
        return {name for name, value in self.features.items() if value}

    def describe(self) -> str:
        """``Intel Xeon …, 2 cores: AVX2, AVX-512F, AVX-512 VNNI; no AMX``."""
        have = [n for n, v in self.features.items() if v]
        lacks = [n for n, v in self.features.items() if v is False]
        unknown = [n for n, v in self.features.items() if v is None]
        text = f"{self.model}, {self.cores or '?'} cores: {', '.join(have) or 'no AVX2'}"
        if lacks:
            text += f"; no {', '.join(lacks)}"
        if unknown:
            text += f"; {', '.join(unknown)} unknown"
        return text


def _linux(cpuinfo: str) -> CpuIsa:
    model, flags, cores = "", set(), 0
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "processor":
            cores += 1
    features: dict[str, bool | None] = {
        name: all(f in flags for f in needed) for name, needed in LINUX_FLAGS.items()}
    return CpuIsa(model or platform.processor() or "unknown CPU", cores or None, features)


def _from_numpy() -> CpuIsa:
    import importlib
    import os

    table: dict[str, bool] = {}
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            table = importlib.import_module(module).__cpu_features__
            break
        except (ImportError, AttributeError):
            continue
    features: dict[str, bool | None] = {
        name: (bool(table.get(key)) if key and table else None)
        for name, key in NUMPY_FLAGS.items()}
    return CpuIsa(platform.processor() or platform.machine() or "unknown CPU", os.cpu_count(),
                  features)


def cpu_isa(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> CpuIsa:
    """This machine's CPU model and ISA features."""
    try:
        return _linux(cpuinfo_path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return _from_numpy()
