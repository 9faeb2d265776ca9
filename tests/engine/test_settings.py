"""Malformed settings are rejected with the setting's name and valid range."""

import pytest

from desktop.engine.settings import PRESETS, SamplingSettings
from desktop.errors import SettingsError


@pytest.mark.parametrize(
    ("change", "name", "range_text"),
    [
        ({"temperature": -0.1}, "temperature", "[0.0, 5.0]"),
        ({"top_p": 0.0}, "top_p", "(0.0, 1.0]"),
        ({"top_p": 1.5}, "top_p", "(0.0, 1.0]"),
        ({"top_k": -1}, "top_k", "[0, "),
        ({"max_new_tokens": 0}, "max_new_tokens", "[1, "),
        ({"min_p": 1.0}, "min_p", "[0.0, 1.0)"),
        ({"repetition_penalty": 0.5}, "repetition_penalty", "[1.0, 2.0]"),
        ({"temperature": float("nan")}, "temperature", "finite"),
        ({"top_k": 2.5}, "top_k", "whole number"),
        ({"seed": -1}, "seed", "[0, "),
    ],
)
def test_bad_values_name_the_setting_and_range(change, name, range_text):
    with pytest.raises(SettingsError) as info:
        SamplingSettings().with_changes(**change).validated()
    message = str(info.value)
    assert message.startswith(name)
    assert range_text in message


def test_edges_are_accepted():
    SamplingSettings(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
                     max_new_tokens=1, seed=0).validated()
    SamplingSettings(temperature=5.0, top_p=1e-6, repetition_penalty=2.0).validated()


def test_presets_are_valid_and_round_trip():
    for preset in PRESETS.values():
        assert SamplingSettings.from_dict(preset.validated().to_dict()) == preset


def test_from_dict_ignores_unknown_keys():
    assert SamplingSettings.from_dict({"temperature": 0.2, "future_knob": 3}).temperature == 0.2
