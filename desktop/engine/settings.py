"""Sampling settings: one dataclass, validated ranges, named presets.

Every front end (window, terminal, benchmark, tests) builds a :class:`SamplingSettings` and the
engine validates it once before generating, so a bad value is reported with the setting's name
and valid range instead of surfacing as a numpy error halfway through a reply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from desktop.errors import SettingsError

#: (minimum, maximum, whether the minimum itself is allowed, whether the maximum is) for each
#: numeric setting; the window, the server and history files check against the same.
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "temperature": (0.0, 5.0, True, True),
    "top_k": (0, 1_000_000, True, True),  # 0: top-k off, every token a candidate
    "top_p": (0.0, 1.0, False, True),
    "min_p": (0.0, 1.0, True, False),  # 1 would keep only the most likely token: use top_k 1
    "repetition_penalty": (1.0, 2.0, True, True),
    "repetition_window": (0, 8192, True, True),
    "max_new_tokens": (1, 1_000_000, True, True),
    "seed": (0, 2**63 - 1, True, True),
}
#: Settings that take whole numbers only.
WHOLE = ("top_k", "repetition_window", "max_new_tokens", "seed")


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen. ``temperature == 0`` means greedy (argmax)."""

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repetition_penalty: float = 1.1
    repetition_window: int = 64
    max_new_tokens: int = 512
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()

    def validated(self) -> SamplingSettings:
        """Return self if every value is in range, else raise :class:`SettingsError`."""
        for name, (low, high, low_ok, high_ok) in RANGES.items():
            value = getattr(self, name)
            if value is None and name == "seed":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"{name} must be a number, got {shown(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{name} must be a finite number, got {shown(value)}")
            if name in WHOLE and int(value) != value:
                raise SettingsError(f"{name} must be a whole number, got {shown(value)}")
            too_low = value < low or (value == low and not low_ok)
            too_high = value > high or (value == high and not high_ok)
            if too_low or too_high:
                valid = f"{'[' if low_ok else '('}{low}, {high}{']' if high_ok else ')'}"
                raise SettingsError(f"{name} = {shown(value)} is out of range: valid is {valid}")
        if any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise SettingsError("stop_strings must be non-empty strings")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop_strings"] = list(self.stop_strings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingSettings:
        """Build from stored or manifest values, ignoring unknown keys (older/newer files)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "stop_strings" in values:
            values["stop_strings"] = tuple(values["stop_strings"] or ())
        return cls(**values)

    def with_changes(self, **changes: Any) -> SamplingSettings:
        return replace(self, **changes)


def check_stored(values: Mapping[str, Any]) -> None:
    """Refuse stored settings the settings dialog would refuse, naming the first bad one.

    ``values`` holds some or all of the settings by name: what a conversation changed from
    the model's defaults, or what a reply recorded it used. Used for history files, so that
    a bad value is refused on import rather than when the next message is sent. Stricter
    than :meth:`SamplingSettings.validated` on types, like the dialog: whole numbers must be
    integers (not ``40.0``), ``stop_strings`` a list of strings, unknown names are refused.
    Raises :class:`SettingsError`.
    """
    known = {f.name for f in fields(SamplingSettings)}
    for name, value in values.items():
        if name not in known:
            raise SettingsError(f"{shown(name)} is not a sampling setting")
        if name in WHOLE and value is not None and (isinstance(value, bool)
                                                    or not isinstance(value, int)):
            raise SettingsError(f"{name} must be a whole number, got {shown(value)}")
    stops = values.get("stop_strings", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise SettingsError("stop_strings must be a list of strings")
    SamplingSettings.from_dict(dict(values)).validated()


def shown(value: Any) -> str:
    """A value for a one-line message: a huge number or a long text is not printed whole."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


PRESETS: dict[str, SamplingSettings] = {
    "precise": SamplingSettings(temperature=0.0, repetition_penalty=1.0),
    "balanced": SamplingSettings(),
    "creative": SamplingSettings(temperature=1.0, top_k=100, top_p=0.98, min_p=0.02),
}


#: The KV cache a model can keep (``load_model(kv_cache=...)``): fp32, exact (CUDA's graph
#: keeps fp16), or int8 on the CPU: a quarter of the memory and faster decoding in long chats,
#: slightly less exact (models/README.md, "The int8 KV cache").
KV_CACHES = ("fp32", "int8")
KV_CACHE_HELP = ("KV cache: fp32 (default), or int8 on the CPU: a quarter of the memory and "
                 "about twice the decode speed at 4,096 tokens of context, slightly less "
                 "exact (models/README.md)")
