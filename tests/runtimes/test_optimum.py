"""Optimum (``ORTModelForCausalLM``) and transformers' tokenizer load an exported folder as it
is and answer greedily with the same tokens as OnnxChat."""

from __future__ import annotations


def optimum_greedy(folder, prompt_ids: list[int], new_tokens: int) -> list[int]:
    """The loading snippet of models/README.md ("Optimum")."""
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    model = ORTModelForCausalLM.from_pretrained(
        folder,
        subfolder="onnx",
        file_name="model.onnx",
        use_cache=True,
        provider="CPUExecutionProvider",
    )
    ids = torch.tensor([prompt_ids])
    output = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        repetition_penalty=1.0,
        max_new_tokens=new_tokens,
    )
    return output[0, len(prompt_ids):].tolist()


def test_optimum_greedy_equals_onnxchat(case, reference):
    ref = reference(case)
    assert "optimum" in ref.manifest["targets"]
    got = optimum_greedy(ref.folder, ref.prompt_ids, len(ref.tokens))
    assert ref.cut(got) == ref.tokens


def test_transformers_tokenizer_encodes_the_prompt_like_onnxchat(case, reference):
    from transformers import AutoTokenizer

    ref = reference(case)
    tokenizer = AutoTokenizer.from_pretrained(ref.folder)
    # The call people write, special tokens on by default: nothing may be added.
    assert tokenizer(ref.prompt_text).input_ids == ref.prompt_ids
    rendered = tokenizer.apply_chat_template(
        ref.messages, tokenize=False, add_generation_prompt=True
    )
    assert rendered == ref.prompt_text
