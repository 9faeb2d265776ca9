"""`auto` searches for a recipe that passes the gate, and a fused recipe falls back to the
Optimum layout for a family it cannot express, saying why."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from export.errors import ValidationFailedError
from export.pipeline import ExportSettings, export_model
from export.progress import Progress
from export.recipes import RECIPES, plan_recipes
from export.validation import ValidationGate


@pytest.fixture(scope="module")
def trained_like_llama() -> Path:
    """A tiny Llama with trained-like random weights (tiny_models.build_family)."""
    from tiny_models import build_family, cached, generator_key

    return cached("family-src-llama", generator_key(), lambda f: build_family("llama", f))


def test_auto_tries_the_fastest_first_and_records_every_try(
    trained_like_llama: Path, tmp_path: Path
) -> None:
    # A random model's flat next-token distributions fail the top-1 gate at 8 bits (0.926 on
    # this one, 0.922 with the LM head in fp32): the search goes on to fp32 weights.
    result = export_model(ExportSettings(source=str(trained_like_llama), out_dir=tmp_path,
                                         name="auto"))
    quant = json.loads((result.path / "manifest.json").read_text())["quantization"]
    tried = quant["auto"]["tried"]
    assert [t["recipe"] for t in tried] == [
        "int8-fused", "int8-fused (LM head fp32)", "fp32-fused"]
    assert [t["passed"] for t in tried] == [False, False, True]
    assert quant["auto"]["chosen"] == "fp32-fused"
    assert quant["recipe"] == "fp32-fused" and quant["bits"] == 32 and quant["layout"] == "fused"
    assert result.validation.passed and not result.validation.forced


def test_auto_refuses_in_one_line_when_nothing_passes(tiny_llama_hf: Path,
                                                      tmp_path: Path) -> None:
    impossible = ValidationGate(min_top1_agreement=1.01)
    with pytest.raises(ValidationFailedError) as refused:
        export_model(ExportSettings(source=str(tiny_llama_hf), out_dir=tmp_path, name="never",
                                    gate=impossible))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("No recipe passed the quality gate (tried int8-fused: ")
    assert "int8-fused (LM head fp32): " in message and "fp32-fused: " in message
    assert "nothing was kept" in message
    assert not (tmp_path / "never").exists()


def test_a_fused_recipe_falls_back_to_the_optimum_layout_with_the_reason(
    tiny_gpt2_hf: Path, tmp_path: Path
) -> None:
    text = io.StringIO()
    result = export_model(
        ExportSettings(source=str(tiny_gpt2_hf), recipe="int8-fused", out_dir=tmp_path,
                       name="gpt2", force=True),
        Progress(text=text),
    )
    reason = ("The fused layout cannot express this model (GPT-2 has learned absolute positions "
              "and LayerNorm with biases): exporting int8 in the Optimum layout instead.")
    assert reason in text.getvalue().splitlines()[1]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["quantization"]["recipe"] == "int8"
    assert manifest["quantization"]["note"] == reason
    assert manifest["onnx"].get("layout", "optimum") == "optimum"


def test_auto_plans_per_source() -> None:
    llama = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
             "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 400}
    plan = plan_recipes("auto", Path("model"), False, llama)
    assert [r.label() for r in plan.candidates] == [
        "int8-fused", "int8-fused (LM head fp32)", "fp32-fused"]
    plan = plan_recipes("auto", Path("model"), False, {"model_type": "gpt2"})
    assert [r.label() for r in plan.candidates] == ["int8", "int8 (LM head fp32)", "fp32"]
    assert plan.note is not None and "learned absolute positions" in plan.note
    assert plan_recipes("int8", Path("model"), False, llama).candidates == (RECIPES["int8"],)
