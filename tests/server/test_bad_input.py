"""Hostile and broken requests, in raw HTTP: each gets a clear 4xx in the OpenAI error shape
and the server keeps answering. Also the protections: body size, slow clients, the bounded
queue, cancellation when a client goes away, the API key, CORS."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from urllib.parse import urlsplit

import pytest
from server_harness import drain, request, wait_event

pytestmark = pytest.mark.slow

HI = [{"role": "user", "content": "Hi"}]
CHAT = "/chat/completions"
COMPLETIONS = "/completions"


def chat(**fields):
    return json.dumps({"messages": HI, "max_tokens": 2, **fields}).encode()


# (name, path, raw body, HTTP status, expected `param`, words in the message)
BAD_REQUESTS = [
    ("malformed JSON", CHAT, b'{"messages": [', 400, None, "not valid JSON"),
    ("not an object", CHAT, b"[1, 2]", 400, None, "must be a JSON object"),
    ("invalid UTF-8", CHAT, b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', 400,
     None, "not valid UTF-8"),
    ("NaN", CHAT, chat().replace(b'"max_tokens": 2', b'"temperature": NaN'), 400, None, "NaN"),
    ("Infinity", CHAT, chat().replace(b'"max_tokens": 2', b'"top_p": -Infinity'), 400, None,
     "-Infinity"),
    ("a float too large", CHAT, chat().replace(b'"max_tokens": 2', b'"temperature": 1e999'),
     400, None, "too large"),
    ("an integer of 5000 digits", CHAT, chat().replace(b'"max_tokens": 2',
                                                       b'"seed": ' + b"9" * 5000), 400, None,
     "cannot be read"),
    ("nesting 100,000 deep", CHAT, b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     400, None, "nests too deeply"),
    ("messages missing", CHAT, b'{"max_tokens": 2}', 400, "messages", "required"),
    ("messages a string", CHAT, b'{"messages": "Hi"}', 400, "messages", "must be a list"),
    ("empty messages", CHAT, b'{"messages": []}', 400, "messages", "empty"),
    ("a message not an object", CHAT, b'{"messages": ["Hi"]}', 400, "messages[0]", "object"),
    ("unknown role", CHAT, b'{"messages": [{"role": "wizard", "content": "Hi"}]}', 400,
     "messages[0].role", "not a role"),
    ("role not a string", CHAT, b'{"messages": [{"role": 7, "content": "Hi"}]}', 400,
     "messages[0].role", "not a role"),
    ("tool role", CHAT, b'{"messages": [{"role": "tool", "content": "42"}]}', 400,
     "messages[0].role", "tool"),
    ("content a number", CHAT, b'{"messages": [{"role": "user", "content": 5}]}', 400,
     "messages[0].content", "string or a list"),
    ("an image part", CHAT, json.dumps({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]}]}).encode(), 400,
     "messages[0].content", "text only"),
    ("temperature a string", CHAT, chat(temperature="hot"), 400, "temperature", "number"),
    ("temperature negative", CHAT, chat(temperature=-1), 400, "temperature", "out of range"),
    ("temperature huge", CHAT, chat(temperature=1e300), 400, "temperature", "out of range"),
    ("top_p zero", CHAT, chat(top_p=0), 400, "top_p", "out of range"),
    ("top_k negative", CHAT, chat(top_k=-1), 400, "top_k", "valid is 0 to"),
    ("min_p one", CHAT, chat(min_p=1), 400, "min_p", "valid is [0.0, 1.0)"),
    ("min_p above one", CHAT, chat(min_p=1.5), 400, "min_p", "valid is [0.0, 1.0)"),
    ("max_tokens negative", CHAT, chat(max_tokens=-5), 400, "max_tokens", "out of range"),
    ("max_tokens zero", CHAT, chat(max_tokens=0), 400, "max_tokens", "out of range"),
    ("max_tokens fractional", CHAT, chat(max_tokens=1.5), 400, "max_tokens", "whole number"),
    ("max_tokens a boolean", CHAT, chat(max_tokens=True), 400, "max_tokens", "whole number"),
    ("max_tokens beyond the context", CHAT, chat(max_tokens=10**30), 400, "max_tokens",
     "more than the model's context"),
    ("max_completion_tokens beyond the context", CHAT, chat(max_completion_tokens=100_000), 400,
     "max_completion_tokens", "more than the model's context"),
    ("max_tokens leaving no room for the message", CHAT, chat(max_tokens=8190), 400,
     "max_tokens", "for 8,190 more: together more than the model's context of 8,192; lower "
     "max_tokens to"),
    ("max_tokens leaving no room for the prompt", COMPLETIONS,
     b'{"prompt": "Once upon a time", "max_tokens": 8191}', 400, "max_tokens",
     "the prompt takes"),
    ("seed negative", CHAT, chat(seed=-1), 400, "seed", "out of range"),
    ("seed huge", CHAT, chat(seed=2**64), 400, "seed", "out of range"),
    ("n = 2", CHAT, chat(n=2), 400, "n", "one choice per request"),
    ("n = 0", CHAT, chat(n=0), 400, "n", "out of range"),
    ("stream a string", CHAT, chat(stream="yes"), 400, "stream", "true or false"),
    ("stop a number", CHAT, chat(stop=5), 400, "stop", "string or a list"),
    ("five stop strings", CHAT, chat(stop=list("abcde")), 400, "stop", "at most 4"),
    ("an empty stop string", CHAT, chat(stop=""), 400, "stop", "1 to 256"),
    ("presence_penalty out of range", CHAT, chat(presence_penalty=3), 400, "presence_penalty",
     "out of range"),
    ("logit_bias not an object", CHAT, chat(logit_bias=[1]), 400, "logit_bias", "object"),
    ("logprobs asked for", CHAT, chat(logprobs=True), 400, "logprobs", "not available"),
    ("JSON output asked for", CHAT, chat(response_format={"type": "json_object"}), 400,
     "response_format", "cannot constrain"),
    ("a required tool call", CHAT, chat(tool_choice="required"), 400, "tool_choice", "tools"),
    ("model not a string", CHAT, chat(model=5), 400, "model", "string"),
    ("10,000 messages", CHAT, json.dumps({"messages": HI * 10_000}).encode(), 400, "messages",
     "at most 4,096"),
    ("a 1 MB message", CHAT, json.dumps({"messages": [
        {"role": "user", "content": "word " * 200_000}]}).encode(), 400, "messages",
     "more than the model's context"),
    ("prompt missing", COMPLETIONS, b'{"max_tokens": 2}', 400, "prompt", "must be a string"),
    ("empty prompt", COMPLETIONS, b'{"prompt": ""}', 400, "prompt", "empty"),
    ("prompt as token ids", COMPLETIONS, b'{"prompt": [1, 2, 3]}', 400, "prompt", "token ids"),
    ("two prompts", COMPLETIONS, b'{"prompt": ["a", "b"]}', 400, "prompt", "one prompt"),
    ("a 1 MB prompt", COMPLETIONS, json.dumps({"prompt": "x" * 1_000_000}).encode(), 400,
     "prompt", "more than the model's context"),
    ("echo", COMPLETIONS, b'{"prompt": "a", "echo": true}', 400, "echo", "not supported"),
    ("best_of = 3", COMPLETIONS, b'{"prompt": "a", "best_of": 3}', 400, "best_of", "one"),
    ("a body over 4 MiB", CHAT, b'{"messages": "' + b"x" * (5 * 1024 * 1024) + b'"}', 413,
     None, "larger than 4 MiB"),
]


def check_error(reply, status, param=None, words=""):
    assert reply.status == status, reply.body[:300]
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and "\n" not in error["message"]
    assert words in error["message"]
    assert error["param"] == param
    return error


@pytest.mark.parametrize(("path", "body", "status", "param", "words"),
                         [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_a_bad_request_gets_a_clear_4xx(server, path, body, status, param, words):
    reply = request(server.url + path, "POST", body)
    error = check_error(reply, status, param, words)
    assert error["type"] == "invalid_request_error"


def test_the_server_stays_up_after_every_bad_request(server):
    for _, path, body, *_ in BAD_REQUESTS:
        request(server.url + path, "POST", body)
    assert request(server.url + "/models").status == 200
    reply = request(server.url + CHAT, "POST", chat(temperature=0))
    assert reply.status == 200 and reply.json()["choices"][0]["message"]["content"]
    assert server.process.poll() is None


def test_a_lone_surrogate_is_answered(server):
    reply = request(server.url + CHAT, "POST", b'{"messages": [{"role": "user", "content": '
                    b'"\\ud800 hello"}], "max_tokens": 2}')
    assert reply.status == 200


def test_unknown_routes_and_methods_name_the_routes(server):
    missing = check_error(request(server.url + "/engines"), 404, words="no route GET")
    assert "/v1/chat/completions" in missing["message"]
    check_error(request(server.url + CHAT), 405, words="GET is not allowed")
    check_error(request(server.url + "/models/gpt-4"), 404, "model", "runs 'smollm2")


def test_ignored_fields_are_accepted(server):
    reply = request(server.url + CHAT, "POST", chat(
        frequency_penalty=0.5, presence_penalty=-0.5, logit_bias={"42": 10}, user="someone",
        tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="auto",
        parallel_tool_calls=False, metadata={"a": "b"}, store=False, unknown_field=[1],
        model="gpt-4o", response_format={"type": "text"}, n=1, logprobs=False,
        top_k=0, min_p=0.1, repetition_penalty=1.2,
        messages=[{"role": "developer", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                  {"role": "assistant", "content": None}, {"role": "user", "content": "Hi"}]))
    assert reply.status == 200, reply.body
    assert reply.json()["model"] == "smollm2-135m-instruct"


def test_the_api_key_is_checked_on_every_route(keyed_server, auth):
    for path, method in (("/models", "GET"), (CHAT, "POST"), (COMPLETIONS, "POST"),
                         ("/nothing", "GET")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": auth[
                "Authorization"].removeprefix("Bearer ")}):
            reply = request(keyed_server.url + path, method, chat(), headers)
            check_error(reply, 401, words="API key")
    assert request(keyed_server.url + "/models", headers=auth).status == 200


def test_cors_is_answered_only_for_the_configured_origin(keyed_server, auth):
    # the official JavaScript client adds headers of its own (x-stainless-…)
    preflight = {"Origin": "http://page.test", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"}
    allowed = request(keyed_server.url + CHAT, "OPTIONS", headers=preflight)
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == "http://page.test"
    assert "x-stainless-os" in allowed.headers["access-control-allow-headers"].lower()
    other = request(keyed_server.url + CHAT, "OPTIONS",
                    headers=preflight | {"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers
    # a page the server allows may read the headers that say what was left out or when to
    # come back
    listed = request(keyed_server.url + "/models", headers={"Origin": "http://page.test"} | auth)
    assert listed.status == 200
    exposed = listed.headers["access-control-expose-headers"].lower()
    assert "onnxchat-dropped-messages" in exposed and "retry-after" in exposed


def test_without_a_key_web_pages_and_other_host_names_are_refused(server):
    """A page in the user's browser can POST plain text to any address without asking first,
    and a page whose DNS name now points at 127.0.0.1 can read the replies: without an API
    key, neither reaches the model (nothing is generated), while local programs do."""
    page = request(server.url + CHAT, "POST", chat(), headers={
        "Origin": "https://evil.example", "Content-Type": "text/plain;charset=UTF-8"})
    check_error(page, 403, words="requests from web pages (https://evil.example) are refused")
    assert page.json()["error"]["code"] == "origin_not_allowed"
    port = urlsplit(server.url).port
    rebound = request(server.url + "/models", headers={"Host": f"attacker.example:{port}"})
    check_error(rebound, 403, words="not to 'attacker.example:")
    for name in ("localhost", "127.0.0.1", "[::1]"):
        assert request(server.url + "/models", headers={"Host": f"{name}:{port}"}).status == 200
    assert request(server.url + CHAT, "POST", chat()).status == 200


def _address(server):
    parts = urlsplit(server.url)
    return parts.hostname, parts.port


def test_a_client_that_never_finishes_its_headers_is_disconnected(keyed_server):
    with socket.create_connection(_address(keyed_server), timeout=120) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(1024) == b""  # closed by the server after --client-timeout


def test_a_client_that_never_finishes_its_body_gets_408(keyed_server, auth):
    with socket.create_connection(_address(keyed_server), timeout=120) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"Authorization: " + auth["Authorization"].encode() + b"\r\n\r\n{\"mess")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"did not arrive within 2 s" in body


def test_a_full_queue_answers_429_and_a_disconnect_cancels_within_a_token(keyed_server, auth):
    """With --queue 1: one request runs (a counting completion that would take minutes), one
    waits, the next is refused with Retry-After. Closing the running one's connection cancels
    it, and the waiting one is then answered."""
    host, port = _address(keyed_server)
    drain(keyed_server)
    running = http.client.HTTPConnection(host, port, timeout=300)
    running.request("POST", "/v1/completions", headers=auth, body=json.dumps({
        "prompt": "1, 2, 3, 4, 5,", "max_tokens": 6000, "temperature": 0, "stream": True}))
    response = running.getresponse()
    assert response.status == 200
    received = response.readline()  # the first token is out: this one is running
    assert received.startswith(b"data: ")
    waiting_reply = []
    waiter = threading.Thread(target=lambda: waiting_reply.append(request(
        keyed_server.url + CHAT, "POST", chat(), auth)))
    waiter.start()
    wait_event(keyed_server, lambda e: e.get("running") == 1 and e.get("waiting") == 1)

    refused = request(keyed_server.url + CHAT, "POST", chat(), auth)
    error = check_error(refused, 429, words="busy")
    assert error["type"] == "requests" and error["code"] == "queue_full"
    assert 1 <= int(refused.headers["retry-after"]) <= 60

    running.close()  # the client goes away mid-stream
    ended = wait_event(keyed_server, lambda e: "last" in e)["last"]
    assert ended["finish_reason"] == "cancelled"
    assert ended["endpoint"] == "completion"
    assert ended["completion_tokens"] < 6000
    waiter.join(300)
    assert waiting_reply and waiting_reply[0].status == 200
    counts = wait_event(keyed_server, lambda e: "last" in e)
    assert counts["refused"] >= 1 and counts["cancelled"] >= 1 and counts["waiting"] == 0
