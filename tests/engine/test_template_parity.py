"""Real chat templates render byte for byte as transformers' ``apply_chat_template`` does.

The templates are the families' own (tests/engine/templates/, sources in its README); the
reference is transformers' ``render_jinja_template``, the function ``apply_chat_template``
calls, given the same messages, tools, special tokens and variables. Where transformers
refuses a conversation (Gemma 2 has no system role, Mistral wants alternating roles), the
engine must refuse it too.
"""

from __future__ import annotations

import pytest
from chat_templates import CONVERSATIONS, FAMILIES, Family, reference_render

from desktop.engine.template import MAX_OUTPUT_CHARS, ChatTemplate, TemplateError
from desktop.template_bench import long_conversation

IDS = [f.name for f in FAMILIES]


def _ours(template: ChatTemplate, messages, **kwargs) -> str | tuple[str, str]:
    try:
        return template.render(messages, **kwargs)
    except TemplateError as exc:
        return ("refused", str(exc))


def _theirs(family: Family, messages, add_generation_prompt, tools, variables):
    try:
        return reference_render(family, messages, add_generation_prompt=add_generation_prompt,
                                tools=tools, variables=variables)
    except Exception as exc:  # jinja2.TemplateError from raise_exception, or UndefinedError
        return ("refused", str(exc))


def _compare(family: Family, ours, theirs) -> bool:
    if isinstance(theirs, tuple) or isinstance(ours, tuple):
        return isinstance(theirs, tuple) and isinstance(ours, tuple)
    return ours == theirs


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_renders_like_transformers(family):
    template = ChatTemplate(family.source, bos_token=family.bos_token,
                            eos_token=family.eos_token)
    differences, rendered = [], 0
    for name, (messages, tools) in CONVERSATIONS.items():
        for variables in family.variants:
            for add_generation_prompt in (True, False):
                case = f"{name} add_generation_prompt={add_generation_prompt} {variables}"
                # strftime_now dates (Llama 3.2, Granite 3.3, SmolLM3): ours is rendered
                # between two references, so a date change in between cannot fail the test.
                before = _theirs(family, messages, add_generation_prompt, tools, variables)
                ours = _ours(template, messages, add_generation_prompt=add_generation_prompt,
                             tools=tools, **variables)
                after = _theirs(family, messages, add_generation_prompt, tools, variables)
                if not (_compare(family, ours, before) or _compare(family, ours, after)):
                    differences.append(f"{case}:\n  transformers {before!r}\n  onnxchat     "
                                       f"{ours!r}")
                rendered += not isinstance(ours, tuple)
    assert not differences, "\n".join(differences)
    assert rendered >= len(CONVERSATIONS)  # most conversations render, not just refusals


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_twenty_thousand_messages_render_like_transformers(family):
    # The size bound as shipped; the time bound is generous here because speed is measured
    # by `onnxchat bench --templates`, never asserted.
    messages = long_conversation(20_000)
    template = ChatTemplate(family.source, bos_token=family.bos_token,
                            eos_token=family.eos_token, max_seconds=120)
    ours = _ours(template, messages, add_generation_prompt=True)
    theirs = _theirs(family, messages, True, None, {})
    assert _compare(family, ours, theirs), (str(ours)[:300], str(theirs)[:300])


def test_a_long_conversation_of_long_messages_is_not_cut_by_the_size_bound():
    family = next(f for f in FAMILIES if f.name == "llama-3.1-8b-instruct")
    messages = long_conversation(20_000)
    messages = [{**m, "content": m["content"] * 10} for m in messages]
    template = ChatTemplate(family.source, bos_token=family.bos_token,
                            eos_token=family.eos_token, max_seconds=120)
    text = template.render(messages)
    assert len(text) > MAX_OUTPUT_CHARS
    assert text == reference_render(family, messages, add_generation_prompt=True)
