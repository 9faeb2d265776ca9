"""Real chat templates (tests/engine/templates/) and conversations to render them with.

Used by the parity test (tests/engine/test_template_parity.py); `onnxchat bench --templates`
(desktop/template_bench.py) times the same templates with the same special tokens
(tests/engine/templates/special_tokens.json) and long conversations. The reference renderer
is transformers' own ``render_jinja_template``, the function ``apply_chat_template`` calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.template_bench import SPECIAL_TOKENS_FILE, SYSTEM

TEMPLATE_DIR = Path(__file__).resolve().parent / "engine" / "templates"


@dataclass(frozen=True)
class Family:
    """One template file and the special tokens its tokenizer defines."""

    file: str
    bos_token: str = ""
    eos_token: str = ""
    #: extra template variables worth trying (e.g. Qwen 3's ``enable_thinking``)
    variants: tuple[dict[str, Any], ...] = field(default=({},))

    @property
    def name(self) -> str:
        return self.file.removesuffix(".jinja")

    @property
    def source(self) -> str:
        return (TEMPLATE_DIR / self.file).read_text(encoding="utf-8")


THINKING = ({}, {"enable_thinking": False})
VARIANTS = {"qwen3-0.6b.jinja": THINKING, "smollm3-3b.jinja": THINKING}

FAMILIES = [
    Family(file, tokens["bos_token"], tokens["eos_token"], VARIANTS.get(file, ({},)))
    for file, tokens in json.loads(
        (TEMPLATE_DIR / SPECIAL_TOKENS_FILE).read_text(encoding="utf-8")).items()
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city — température, 天气 ☀️",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich or 北京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


#: name → (messages, tools)
CONVERSATIONS: dict[str, tuple[list[dict[str, str]], list[dict[str, Any]] | None]] = {
    "one_user": ([_user("What is the capital of France?")], None),
    "system_and_user": ([SYSTEM, _user("What is the capital of France?")], None),
    "multi_turn": ([
        SYSTEM,
        _user("Hi! Can you help me plan a short trip?"),
        _assistant("Of course. Where would you like to go?"),
        _user("Somewhere quiet, with museums."),
        _assistant("Ghent or Leiden would suit you: small, calm, and full of museums."),
        _user("Which one is closer to Paris?"),
    ], None),
    "non_ascii": ([
        {"role": "system", "content": "Tu es un assistant serviable. Réponds en français."},
        _user("你好！请用中文介绍一下巴黎。🙂 Ünïcödé — “quotes” <b>tags</b> & 'apostrophes'"),
        _assistant("巴黎是法国的首都 🗼，以艺术和美食闻名。Déjà vu? ✨"),
        _user("Merci ! 👍 Et Zürich? 🇨🇭 \u00a0\u2028 done"),
    ], None),
    "whitespace": ([
        _user("  \n  leading and trailing blanks \n\n"),
        _assistant("\n\nAn answer that starts with blank lines.  "),
        _user("\tTabs\tand\r\nCRLF\r\n"),
    ], None),
    "thinking": ([
        _user("What is 17 * 3?"),
        _assistant("<think>\n17 * 3 = 51.\n</think>\n\n17 × 3 = 51."),
        _user("And 51 / 3?"),
    ], None),
    "tools": ([SYSTEM, _user("What is the weather in Zürich?")], [WEATHER_TOOL]),
    "ends_with_assistant": ([
        _user("Write a haiku about autumn."),
        _assistant("Leaves drift on the pond"),
    ], None),
}


def reference_render(
    family: Family,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool,
    tools: list[dict[str, Any]] | None = None,
    variables: dict[str, Any] | None = None,
) -> str:
    """What transformers' ``apply_chat_template(..., tokenize=False)`` returns."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages],
        tools=tools,
        chat_template=family.source,
        add_generation_prompt=add_generation_prompt,
        bos_token=family.bos_token,
        eos_token=family.eos_token,
        **(variables or {}),
    )
    return rendered[0]
