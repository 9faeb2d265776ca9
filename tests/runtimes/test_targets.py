"""The manifest's ``targets`` and ``genai_config.json`` follow the graph, for graphs the other
tests do not export: a graph genai cannot feed must not claim ``genai``."""

from __future__ import annotations

from export.manifest import genai_config, targets
from export.onnx_files import OnnxIO
from export.tokenizer_files import TokenizerInfo

CACHE = [f"past_key_values.{i}.{kind}" for i in range(2) for kind in ("key", "value")]
PRESENT = [f"present.{i}.{kind}" for i in range(2) for kind in ("key", "value")]
ARCH = {
    "model_type": "gpt2",
    "num_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_size": 64,
    "vocab_size": 400,
}
SAMPLING = {"temperature": 0.7, "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1}


def io(inputs: list[str], shape: list[int | str] | None = None) -> OnnxIO:
    return OnnxIO(
        inputs=inputs,
        outputs=["logits", *PRESENT],
        cache_shape=shape if shape is not None else ["batch_size", 2, "past_sequence_length", 16],
    )


def tokens(bos: int | None) -> TokenizerInfo:
    return TokenizerInfo(
        canonicalised=False,
        special_tokens={"bos_token_id": bos, "eos_token_id": 2, "pad_token_id": None},
        stop_token_ids=[0, 2],
        chat_template=None,
        vocab_size=400,
    )


def test_standard_decoder_inputs_claim_every_runtime():
    plain = io(["input_ids", "attention_mask", "position_ids", *CACHE])
    assert targets(plain, has_external_data=False) == [
        "onnxchat", "optimum", "genai", "transformers.js"]
    assert "transformers.js" not in targets(plain, has_external_data=True)


def test_graphs_genai_cannot_feed_do_not_claim_it():
    with_token_types = io(["input_ids", "attention_mask", "token_type_ids", *CACHE])
    combined_cache = io(["input_ids", "attention_mask", "past_key_values.0", "past_key_values.1"])
    three_d_cache = io(["input_ids", "attention_mask", *CACHE], ["batch_heads", 16, "past"])
    for graph in (with_token_types, combined_cache, three_d_cache):
        assert "genai" not in targets(graph, has_external_data=False)


def test_genai_config_for_the_optimum_layout():
    config = genai_config(ARCH, io(["input_ids", "attention_mask", "position_ids", *CACHE]),
                          128, tokens(bos=None), SAMPLING)
    model = config["model"]
    assert model["type"] == "decoder"  # "gpt2" would make genai expect a combined cache
    assert model["eos_token_id"] == [0, 2]
    assert model["pad_token_id"] == 0
    assert "bos_token_id" not in model  # genai refuses null
    assert model["decoder"]["inputs"]["position_ids"] == "position_ids"
    assert config["search"]["past_present_share_buffer"] is False
    assert model["context_length"] == config["search"]["max_length"] == 128


def test_genai_config_for_a_preallocated_cache_graph():
    fused = io(["input_ids", "attention_mask", *CACHE])
    config = genai_config({**ARCH, "model_type": "llama"}, fused, 8192, tokens(bos=1), SAMPLING,
                          shared_buffer=True, max_length=2048)
    model = config["model"]
    assert model["type"] == "llama"
    assert model["bos_token_id"] == 1
    assert "position_ids" not in model["decoder"]["inputs"]
    assert config["search"]["past_present_share_buffer"] is True
    assert model["context_length"] == config["search"]["max_length"] == 2048
