"""The official ``openai`` package against ``onnxchat serve`` running the default model."""

from __future__ import annotations

import openai
import pytest

from desktop.paths import DEFAULT_MODEL_NAME

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="not-checked", max_retries=0)


def ask(client, text, **kwargs):
    return client.chat.completions.create(
        model=DEFAULT_MODEL_NAME, messages=[{"role": "user", "content": text}], **kwargs)


def test_models_list_names_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [DEFAULT_MODEL_NAME]
    assert client.models.retrieve(DEFAULT_MODEL_NAME).owned_by == "onnxchat"


def test_chat_completion(client):
    reply = ask(client, "What is the capital of France?", max_tokens=12, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert reply.model == DEFAULT_MODEL_NAME and reply.id.startswith("chatcmpl-")
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_chat_completion_matches_the_whole_answer(client):
    settings = {"max_tokens": 12, "temperature": 0, "seed": 3}
    whole = ask(client, "Name three colours.", **settings)
    chunks = list(ask(client, "Name three colours.", stream=True,
                      stream_options={"include_usage": True}, **settings))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices
                and c.choices[0].finish_reason]
    assert text == whole.choices[0].message.content
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_text_completion_and_a_stop_string(client):
    plain = client.completions.create(model=DEFAULT_MODEL_NAME, prompt="1, 2, 3, 4,",
                                      max_tokens=10, temperature=0)
    assert plain.choices[0].text.startswith(" 5, 6,")
    stopped = client.completions.create(model=DEFAULT_MODEL_NAME, prompt="1, 2, 3, 4,",
                                        max_tokens=10, temperature=0, stop=[" 7", "x"])
    assert stopped.choices[0].text == " 5, 6,"
    assert stopped.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model=DEFAULT_MODEL_NAME, prompt="1, 2, 3, 4,",
                                         max_tokens=10, temperature=0, stop=" 7", stream=True)
    pieces = list(streamed)
    assert "".join(p.choices[0].text for p in pieces) == " 5, 6,"
    assert pieces[-1].choices[0].finish_reason == "stop"


def test_a_stop_string_ends_a_streamed_chat_reply(client):
    full = ask(client, "Write a sentence about the sea.", max_tokens=16, temperature=0)
    text = full.choices[0].message.content
    cut = text.split()[3]  # a word from the middle of the reply
    chunks = list(ask(client, "Write a sentence about the sea.", max_tokens=16, temperature=0,
                      stop=[cut], stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text[:text.index(cut)]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_seed_reproduces_the_same_text(client):
    settings = {"max_tokens": 16, "temperature": 1.0, "top_p": 1.0}
    first = ask(client, "Tell me a story.", seed=1234, **settings).choices[0].message.content
    again = ask(client, "Tell me a story.", seed=1234, **settings).choices[0].message.content
    ask(client, "Something else entirely.", seed=5, **settings)
    later = ask(client, "Tell me a story.", seed=1234, **settings).choices[0].message.content
    other = ask(client, "Tell me a story.", seed=4321, **settings).choices[0].message.content
    assert first == again == later
    assert other != first


def test_a_wrong_api_key_is_rejected(keyed_server, api_key):
    wrong = openai.OpenAI(base_url=keyed_server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401
    assert "API key" in caught.value.body["message"]
    with pytest.raises(openai.AuthenticationError):
        ask(wrong, "Hi", max_tokens=2)
    right = openai.OpenAI(base_url=keyed_server.url, api_key=api_key, max_retries=0)
    assert ask(right, "Hi", max_tokens=2).choices[0].message.content


def test_n_above_one_is_refused_clearly(client):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "Hi", n=2, max_tokens=2)
    assert caught.value.body["param"] == "n"
    assert "one choice per request" in caught.value.body["message"]
