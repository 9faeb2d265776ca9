"""Whether this machine can hold a source in fp32, asked before the fp32 route starts.

The fp32 route loads the whole model into transformers in fp32 (Optimum's export and the
gate's fp32 graph come on top of that), so a model whose fp32 weights alone exceed the
machine's memory cannot finish: it would be killed for memory after minutes of work, or swap
for hours. That much is certain, so it is refused up front with what to do instead; a model
that merely comes close is left to try.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

from export.errors import ExportError

#: Bytes per element of the dtypes a ``pytorch_model*.bin`` may hold (``config.json``).
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def physical_memory() -> int | None:
    """This machine's RAM in bytes, or None where the platform does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def folder_fp32_bytes(folder: Path) -> int | None:
    """The fp32 size of a Hugging Face folder's weights: elements counted from the
    safetensors headers (no weights read), else the ``.bin`` files' size scaled by the
    config's dtype. None when the folder holds neither."""
    elements = 0
    shards = sorted(folder.glob("*.safetensors"))
    for shard in shards:
        try:
            with shard.open("rb") as file:
                (length,) = struct.unpack("<Q", file.read(8))
                header = json.loads(file.read(min(length, 100 * 1024**2)))
            elements += sum(math.prod(entry["shape"]) for key, entry in header.items()
                            if key != "__metadata__")
        except (OSError, ValueError, struct.error, KeyError, TypeError, AttributeError):
            return None  # a damaged file: loading it says what is wrong, with its name
    if shards:
        return elements * 4
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        return None
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    width = _DTYPE_BYTES.get(str(config.get("torch_dtype") or config.get("dtype")), 4)
    return sum(b.stat().st_size for b in bins) * 4 // width


def check_fp32_fits(label: str, fp32_bytes: int | None, memory: int | None,
                    instead: str) -> None:
    """Refuse, in one line, a source whose fp32 weights exceed ``memory``; ``instead`` is
    what to do about it."""
    if fp32_bytes is None or memory is None or fp32_bytes <= memory:
        return
    raise ExportError(
        f"{label} has {fp32_bytes / 4e9:.1f}B weights, {fp32_bytes / 1e9:.1f} GB in fp32, and "
        f"exporting it this way holds the whole model in fp32: more than this machine's "
        f"{memory / 1e9:.1f} GB of memory. {instead}"
    )
