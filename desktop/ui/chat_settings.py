"""Per-conversation chat settings: the system prompt and sampling overrides.

A conversation stores only the sampling values the user changed from the model's defaults
(``manifest.sampling_defaults``), so a chat that was never customised follows whichever model
answers it, and "Reset to defaults" is simply an empty dictionary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from desktop.engine import SamplingSettings

# The settings the chat settings page edits, in display order.
EDITABLE = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "max_new_tokens",
            "seed")


@dataclass(frozen=True)
class ChatSettings:
    """What a conversation asks of the model besides its messages."""

    system_prompt: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def sampling(self, model_defaults: Mapping[str, Any]) -> SamplingSettings:
        """The model's defaults with this conversation's changes on top (not yet validated)."""
        return SamplingSettings.from_dict({**model_defaults, **self.overrides})


def overrides_from(settings: SamplingSettings, model_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The editable values of ``settings`` that differ from the model's defaults."""
    base = SamplingSettings.from_dict(dict(model_defaults))
    return {name: getattr(settings, name) for name in EDITABLE
            if getattr(settings, name) != getattr(base, name)}
