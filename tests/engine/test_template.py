"""Chat templates are code from strangers: sandboxed, bounded in time and size."""

import time

import pytest

from desktop.engine.template import ChatTemplate, TemplateError

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_renders_the_models_template():
    text = ChatTemplate(CHATML).render(MESSAGES)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_special_tokens_and_generation_prompt_flag():
    template = ChatTemplate("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"
                            "{% if add_generation_prompt %}>{% endif %}", bos_token="<s>")
    assert template.render(MESSAGES) == "<s>Be brief.Hi>"
    assert template.render(MESSAGES, add_generation_prompt=False) == "<s>Be brief.Hi"


def test_fallback_when_the_model_has_no_template():
    template = ChatTemplate(None)
    assert template.is_fallback
    assert template.render(MESSAGES) == "System: Be brief.\n\nUser: Hi\n\nAssistant:"


def test_raise_exception_is_reported():
    template = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError, match="roles must alternate"):
        template.render(MESSAGES)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% set x = messages.append({'role': 'x'}) %}",
    ],
)
def test_reaching_python_internals_is_refused(source):
    with pytest.raises(TemplateError):
        ChatTemplate(source).render(MESSAGES)


def test_endless_loop_is_stopped_within_the_time_bound():
    source = ("{% for i in range(100000) %}{% for j in range(100000) %}"
              "{% if i == -1 %}x{% endif %}{% endfor %}{% endfor %}")
    started = time.monotonic()
    with pytest.raises(TemplateError, match="longer than"):
        ChatTemplate(source, max_seconds=0.5).render(MESSAGES)
    assert time.monotonic() - started < 5


def test_megabytes_of_output_are_stopped():
    source = "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}"
    with pytest.raises(TemplateError, match="characters"):
        ChatTemplate(source, max_chars=1_000_000).render(MESSAGES)


def test_huge_repetition_is_refused_before_allocating():
    with pytest.raises(TemplateError, match="too large"):
        ChatTemplate("{{ 'x' * 10000000000 }}").render(MESSAGES)


def test_syntax_error_names_the_line():
    with pytest.raises(TemplateError, match="line 2"):
        ChatTemplate("ok\n{% for %}")
