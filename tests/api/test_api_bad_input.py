"""Malformed and hostile requests: each is a 4xx in OpenAI's error shape (never a 500, never
HTML), and the server stays healthy. Also the errors the official client raises."""

from __future__ import annotations

import json

import openai
import pytest
import requests
from api_helpers import assert_openai_error

CHAT = "/v1/chat/completions"
# a real 2x2 PNG: the tiny model has no projector, so it is refused for that reason alone
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8Dw"
    "/z8Dw38GBoZ/AAnMAf+Z8LHSAAAAAElFTkSuQmCC"
)
COMPLETIONS = "/v1/completions"
HI = [{"role": "user", "content": "Hi"}]
MB = 1 << 20


def chat(**fields):
    return {"messages": HI, "max_tokens": 2, **fields}


def completion(**fields):
    return {"prompt": "Hi", "max_tokens": 2, **fields}


# (id, path, body: dict -> JSON, bytes -> sent as is, status, param the error should name)
# A schema the grammar converter cannot resolve.
UNUSABLE_SCHEMA = {"name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}

CASES = [
    ("broken JSON", CHAT, b'{"messages": [', 400, None),
    ("not JSON", CHAT, b"hello there", 400, None),
    ("JSON array", CHAT, b"[]", 400, None),
    ("JSON string", CHAT, b'"messages"', 400, None),
    ("empty body", CHAT, b"", 400, None),
    ("invalid UTF-8", CHAT, b'{"messages": "\xff\xfe"}', 400, None),
    ("NaN", CHAT, b'{"messages": [{"role": "user", "content": "Hi"}], "temperature": NaN}', 400, None),
    ("deep nesting", CHAT, b"[" * 100_000 + b"]" * 100_000, 400, None),
    ("duplicate trailing commas", CHAT, b'{"messages": [],,}', 400, None),
    ("messages is a string", CHAT, {"messages": "Hi"}, 400, "messages"),
    ("messages missing", CHAT, {"model": "tiny"}, 400, "messages"),
    ("empty messages", CHAT, {"messages": []}, 400, "messages"),
    ("unknown role", CHAT, {"messages": [{"role": "wizard", "content": "Hi"}]}, 400, "messages.0.role"),
    ("user message without content", CHAT, {"messages": [{"role": "user"}]}, 400, "messages.0"),
    ("content is a number", CHAT, {"messages": [{"role": "user", "content": 5}]}, 400, "messages.0.content"),
    (
        "image for a text model",
        CHAT,
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}]},
        400,
        "messages",
    ),
    (
        "an image that is not one",
        CHAT,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                }
            ]
        },
        400,
        "messages.0.content.0",
    ),
    ("max_tokens as a string", CHAT, chat(max_tokens="50"), 400, "max_tokens"),
    ("negative max_tokens", CHAT, chat(max_tokens=-1), 400, "max_tokens"),
    ("huge max_tokens", CHAT, chat(max_tokens=10**12), 400, "max_tokens"),
    ("huge max_completion_tokens", COMPLETIONS, completion(max_tokens=5000), 400, "max_tokens"),
    ("n=1000", CHAT, chat(n=1000), 400, "n"),
    ("n=0", CHAT, chat(n=0), 400, "n"),
    ("temperature 5", CHAT, chat(temperature=5), 400, "temperature"),
    ("top_p -1", CHAT, chat(top_p=-1), 400, "top_p"),
    ("stream is a string", CHAT, chat(stream="yes"), 400, "stream"),
    ("100 stop strings", CHAT, chat(stop=[str(i) for i in range(100)]), 400, "stop"),
    ("stop is a number", CHAT, chat(stop=7), 400, "stop"),
    ("logit_bias key not a token id", CHAT, chat(logit_bias={"hello": 1}), 400, "logit_bias"),
    ("logit_bias value 1000", CHAT, chat(logit_bias={"5": 1000}), 400, "logit_bias"),
    ("logit_bias token outside the vocabulary", CHAT, chat(logit_bias={"99999999": 1}), 400, "logit_bias"),
    ("seed 2**70", CHAT, chat(seed=2**70), 400, "seed"),
    ("top_logprobs without logprobs", CHAT, chat(top_logprobs=3), 400, "top_logprobs"),
    ("top_logprobs 50", CHAT, chat(logprobs=True, top_logprobs=50), 400, "top_logprobs"),
    ("unknown response_format", CHAT, chat(response_format={"type": "xml"}), 400, "response_format.type"),
    (
        "json_schema without schema object",
        CHAT,
        chat(response_format={"type": "json_schema"}),
        400,
        "response_format.json_schema",
    ),
    (
        "unusable JSON schema",
        CHAT,
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": UNUSABLE_SCHEMA,
            }
        ),
        400,
        None,
    ),
    (
        "unusable JSON schema, streamed",
        CHAT,
        chat(
            stream=True,
            response_format={
                "type": "json_schema",
                "json_schema": UNUSABLE_SCHEMA,
            },
        ),
        400,
        None,
    ),
    (
        "bad tool name",
        CHAT,
        chat(tools=[{"type": "function", "function": {"name": "no spaces allowed"}}]),
        400,
        "tools",
    ),
    (
        "tool_choice names no tool",
        CHAT,
        chat(
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice={"type": "function", "function": {"name": "g"}},
        ),
        400,
        "tool_choice",
    ),
    ("unknown mode", CHAT, chat(mode="poetry"), 400, "mode"),
    ("character path traversal", CHAT, chat(mode="chat", character="../../etc/passwd"), (400, 404), None),
    ("unknown instruction template", CHAT, chat(instruction_template="NoSuchTemplate"), 404, None),
    ("template that raises", CHAT, chat(instruction_template_str="{{ raise_exception('no') }}"), 400, None),
    (
        "template that never ends",
        CHAT,
        chat(instruction_template_str="{% for i in range(10**9) %}x{% endfor %}"),
        400,
        None,
    ),
    (
        "template that would fill the memory",
        CHAT,
        chat(instruction_template_str="{{ 'x'.zfill(10**10) }}{{ '{:>9999999999}'.format(1) }}"),
        400,
        "instruction_template",
    ),
    ("unknown model", CHAT, chat(model="gpt-4o"), 404, "model"),
    ("model is a number", CHAT, chat(model=4), 400, "model"),
    ("prompt missing", COMPLETIONS, {"max_tokens": 2}, 400, "prompt"),
    ("prompt empty list", COMPLETIONS, completion(prompt=[]), 400, "prompt"),
    ("negative token id", COMPLETIONS, completion(prompt=[1, -5]), 400, "prompt.1"),
    ("token id outside the vocabulary", COMPLETIONS, completion(prompt=[1, 10**9]), 400, "prompt"),
    ("mixed prompt list", COMPLETIONS, completion(prompt=["a", 1]), 400, "prompt"),
    ("prompt longer than the context", COMPLETIONS, completion(prompt="word " * 3000), 400, None),
    ("logprobs 100", COMPLETIONS, completion(logprobs=100), 400, "logprobs"),
    ("best_of below n", COMPLETIONS, completion(n=3, best_of=2), 400, "best_of"),
    ("best_of with stream", COMPLETIONS, completion(best_of=2, stream=True), 400, "best_of"),
    ("prompts x n over the limit", COMPLETIONS, completion(prompt=["a"] * 20, n=10), 400, "n"),
    ("edits without instruction", "/v1/edits", {"input": "x"}, 400, "instruction"),
    ("decode outside the vocabulary", "/v1/internal/decode", {"tokens": [10**8]}, 400, "tokens"),
    ("encode without text", "/v1/internal/encode", {}, 400, "text"),
    ("logits top_logits 0", "/v1/internal/logits", {"prompt": "a", "top_logits": 0}, 400, "top_logits"),
    (
        "load with unknown args",
        "/v1/internal/model/load",
        {"model_name": "tiny", "args": {"cache_type": "q8_0"}},
        400,
        "args.cache_type",
    ),
    ("load an unknown model", "/v1/internal/model/load", {"model_name": "nope"}, 404, "model"),
    (
        "load with an unknown template",
        "/v1/internal/model/load",
        {"model_name": "tiny", "instruction_template": "NoSuchTemplate"},
        404,
        None,
    ),
    ("stop an unknown id", "/v1/internal/stop-generation", {"id": "chatcmpl-nope"}, 404, "id"),
    ("unknown route", "/v1/nothing/here", {}, 404, None),
    # The text rule: lone surrogates are valid JSON escapes but not text; a 400 naming the place.
    (
        "lone surrogate in content",
        CHAT,
        {"messages": [{"role": "user", "content": "a\udc80b"}]},
        400,
        "messages.0.content",
    ),
    (
        "lone surrogate in a content part",
        CHAT,
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]},
        400,
        "messages.0.content.0.text",
    ),
    (
        "lone surrogate in tool arguments",
        CHAT,
        {
            "messages": [
                HI[0],
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x": "\udfff"}'},
                        }
                    ],
                },
            ]
        },
        400,
        "messages.1.tool_calls.0.function.arguments",
    ),
    ("lone surrogate in a logit_bias key", CHAT, chat(logit_bias={"\ud800": 1}), 400, "logit_bias"),
    ("lone surrogate in a prompt", COMPLETIONS, completion(prompt=["ok", "\udc00"]), 400, "prompt.1"),
    ("lone surrogate to encode", "/v1/internal/encode", {"text": "\ud800"}, 400, "text"),
    ("lone surrogate to count", "/v1/internal/token-count", {"text": "x\ud800"}, 400, "text"),
    ("lone surrogate in an unknown field", CHAT, chat(extra_thing="\ud800"), 400, "extra_thing"),
    ("lone surrogate to embed", "/v1/embeddings", {"input": ["fine", "\ud800"]}, 400, "input.1"),
    ("lone surrogate to moderate", "/v1/moderations", {"input": "\udbff"}, 400, "input"),
    ("lone surrogate to load", "/v1/internal/model/load", {"model_name": "\ud800"}, 400, "model_name"),
    # A megabyte the tokenizer would take a minute over (found by tests/fuzz): refused at once.
    ("a megabyte of NUL to count", "/v1/internal/token-count", {"text": "\x00" * MB}, 400, "text"),
    ("a megabyte of RTL marks to encode", "/v1/internal/encode", {"text": "\u202e" * MB}, 400, "text"),
    ("a megabyte of NUL to complete", COMPLETIONS, completion(prompt="\x00" * MB), 400, None),
    ("a megabyte of NUL to chat", CHAT, {"messages": [{"role": "user", "content": "\x00" * MB}]}, 400, None),
    (
        "structure 100 levels deep",
        CHAT,
        chat(
            tools=[
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": json.loads("[" * 100 + "]" * 100)},
                }
            ]
        ),
        400,
        "tools.0.function.parameters",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_request_is_an_openai_error(api, path, body, status, param):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = requests.post(
        api.api_base + path, data=data, timeout=60, headers={"Content-Type": "application/json"}
    )
    error = assert_openai_error(response, status)
    if param is not None:  # the field, or a part of it (`prompt` for `prompt.0`)
        assert error["param"] == param or error["param"].startswith(param + "."), error


def test_ten_megabyte_body_is_413(api):
    body = json.dumps({"messages": HI, "pad": "x" * (10 * 1024 * 1024)})
    response = requests.post(api.api_base + CHAT, data=body, timeout=60)
    assert_openai_error(response, 413)


def test_wrong_method_is_405(api):
    assert_openai_error(requests.get(api.api_base + CHAT, timeout=10), 405)
    assert_openai_error(requests.delete(api.api_url + "/models", timeout=10), 405)


def test_errors_name_where_the_json_broke(api):
    response = requests.post(
        api.api_base + CHAT, data=b'{\n "messages": [\n  {"role": "user" "content": "x"}]}', timeout=10
    )
    assert "line 3" in assert_openai_error(response, 400)["message"]


def test_server_is_healthy_after_all_that(api, client):
    assert requests.get(api.api_base + "/health", timeout=10).json()["status"] == "ok"
    reply = client.chat.completions.create(model="tiny", messages=HI, max_tokens=3)
    assert reply.choices[0].message.content
    assert api.process.poll() is None
    assert "Traceback" not in api.log()


def test_client_raises_the_matching_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=HI, n=1000)
    assert caught.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt="Hi", max_tokens=100_000)
    assert caught.value.code == "context_length_exceeded"


def test_unsupported_openai_fields_are_ignored(client):
    reply = client.chat.completions.create(
        model="tiny",
        messages=HI,
        max_tokens=2,
        parallel_tool_calls=False,
        store=False,
        metadata={"k": "v"},
        service_tier="auto",
        user="u1",
        extra_body={"something_new": 1},
    )
    assert reply.choices[0].message.content is not None


def test_body_without_content_type_is_read_as_json(api):
    response = requests.post(
        api.api_base + CHAT,
        data=json.dumps(chat()),
        timeout=30,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
