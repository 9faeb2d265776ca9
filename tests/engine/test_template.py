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
        "{% set x = messages[0].update({'content': 'changed'}) %}",
        "{% set x = messages[0].pop('content') %}",
    ],
)
def test_reaching_python_internals_is_refused(source):
    messages = [dict(m) for m in MESSAGES]
    with pytest.raises(TemplateError):
        ChatTemplate(source).render(messages)
    assert messages == MESSAGES  # the caller's messages are never changed


def test_endless_loop_is_stopped_within_the_time_bound():
    source = ("{% for i in range(100000) %}{% for j in range(100000) %}"
              "{% if i == -1 %}x{% endif %}{% endfor %}{% endfor %}")
    started = time.monotonic()
    with pytest.raises(TemplateError, match="longer than"):
        ChatTemplate(source, max_seconds=0.5).render(MESSAGES)
    assert time.monotonic() - started < 5


def test_loops_without_calls_are_stopped_within_the_time_bound():
    # No function call and no output: only the loops themselves can notice the deadline.
    source = ("{% for a in messages %}{% for b in messages %}{% for c in messages %}"
              "{% endfor %}{% endfor %}{% endfor %}")
    messages = [{"role": "user", "content": str(i)} for i in range(3000)]
    started = time.monotonic()
    with pytest.raises(TemplateError, match="longer than"):
        ChatTemplate(source, max_seconds=0.5).render(messages)
    assert time.monotonic() - started < 5


def test_exponential_recursion_is_stopped_within_the_time_bound():
    source = ("{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
              "{% endmacro %}{{ f(0) }}")
    started = time.monotonic()
    with pytest.raises(TemplateError, match="longer than"):
        ChatTemplate(source, max_seconds=0.5).render(MESSAGES)
    assert time.monotonic() - started < 5


def test_megabytes_of_output_are_stopped():
    source = "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}"
    with pytest.raises(TemplateError, match="characters"):
        ChatTemplate(source, max_chars=1_000_000).render(MESSAGES)


def test_the_size_bound_grows_with_the_messages_but_still_holds():
    messages = [{"role": "user", "content": "x" * 1000} for _ in range(10)]  # 10,000 chars
    echo = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert len(ChatTemplate(echo, max_chars=5000).render(messages)) == 10_000
    tenfold = ("{% for m in messages %}{% for i in range(10) %}{{ m.content }}{% endfor %}"
               "{% endfor %}")
    with pytest.raises(TemplateError, match="more than 45,000 characters"):
        ChatTemplate(tenfold, max_chars=5000).render(messages)


def test_huge_repetition_is_refused_before_allocating():
    with pytest.raises(TemplateError, match="too large"):
        ChatTemplate("{{ 'x' * 10000000000 }}").render(MESSAGES)


def test_syntax_error_names_the_line():
    with pytest.raises(TemplateError, match="line 2"):
        ChatTemplate("ok\n{% for %}")


def test_tools_and_documents_are_none_unless_given():
    template = ChatTemplate("{{ tools is none }} {{ documents is none }}"
                            "{% if tools is not none %} {{ tools | length }} tools{% endif %}")
    assert template.render(MESSAGES) == "True True"
    assert template.render(MESSAGES, tools=[{"name": "a"}]) == "False True 1 tools"


def test_template_variables_reach_the_template():
    template = ChatTemplate("{% if enable_thinking is defined and not enable_thinking %}"
                            "no-think{% else %}think{% endif %}")
    assert template.render(MESSAGES) == "think"
    assert template.render(MESSAGES, enable_thinking=False) == "no-think"


@pytest.mark.parametrize("call", [
    "tojson", "tojson(indent=2)", "tojson(separators=(',', ':'))", "tojson(sort_keys=true)",
    "tojson(ensure_ascii=true)", "tojson(indent=4, sort_keys=true)",
])
def test_tojson_is_transformers_json_dumps(call):
    from transformers.utils.chat_template_utils import render_jinja_template

    value = {"z": "<b>é & 'quote' \"中文\" 🙂</b>", "a": [1, 2.5, None, True], "m": {"k": "v"}}
    source = "{{ value | " + call + " }}"
    expected, _ = render_jinja_template([MESSAGES], chat_template=source, value=value)
    assert ChatTemplate(source).render(MESSAGES, value=value) == expected[0]


def test_generation_tag_renders_its_body_in_its_own_scope():
    from transformers.utils.chat_template_utils import render_jinja_template

    source = ("{% set x = 'outer' %}{% for m in messages %}{% generation %}"
              "{% set x = 'inner' %}[{{ m.content }}|{{ x }}]{% endgeneration %}{% endfor %}"
              "{{ x }}")
    expected, _ = render_jinja_template([MESSAGES], chat_template=source)
    assert ChatTemplate(source).render(MESSAGES) == expected[0] == (
        "[Be brief.|inner][Hi|inner]outer")


JINJA_FEATURES = (
    "{% for m in messages|selectattr('role', 'equalto', 'user') %}{{ loop.index }}/"
    "{{ loop.length }}/{{ loop.revindex }} {{ loop.cycle('a', 'b') }}"
    "{% if loop.nextitem is defined %}+{% endif %}{% endfor %}|"
    "{% for m in messages if m.role != 'system' %}{{ m.content }}{% else %}none{% endfor %}|"
    "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{{ m.role }}"
    "{% break %}{% endfor %}|"
    "{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}|"
    "{{ messages[0].items is defined }} {{ messages[0].get('missing', 'dflt') }} "
    "{{ messages[0].nothing is defined }}|"
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
    "{{ ns.n }}|{{ '{}-{}'.format('a', 'b') }} {{ 'A,B'.lower().split(',') | join('+') }}|"
    "{% macro wrap(x) %}<{{ caller() }}:{{ x }}>{% endmacro %}"
    "{% call wrap(1) %}inner{% endcall %}|"
    "{% for node in tree recursive %}({{ node.name }}{{ loop(node.children) }}){% endfor %}|"
    "{% filter upper %}shout{% endfilter %}"
)


def test_jinja_features_render_as_in_transformers():
    from transformers.utils.chat_template_utils import render_jinja_template

    messages = [{"role": "system", "content": "S", "items": "key named items"},
                {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A"},
                {"role": "user", "content": "U2"}]
    tree = [{"name": "a", "children": [{"name": "b", "children": []}]}]
    expected, _ = render_jinja_template([messages], chat_template=JINJA_FEATURES, tree=tree)
    assert ChatTemplate(JINJA_FEATURES).render(messages, tree=tree) == expected[0]
