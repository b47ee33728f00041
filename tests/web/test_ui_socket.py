"""The chat websocket against a real server: streaming, stop, the actions, bad messages."""

from __future__ import annotations

import json
import time

import pytest
from ui_helpers import UiClient


@pytest.fixture(scope="module")
def running(tmp_path_factory, model_dir):
    """One real server for this module (starting one per test would dominate the time)."""
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("socket")
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        [*tiny_args(user_data, model_dir, ctx_size=2048), "--parallel", "2"],
        log_path=folder / "server.log",
        wait_for="ui",
    )
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


@pytest.fixture
def ui(running):
    return UiClient(running.ui_url)


def test_send_streams_deltas_and_saves_the_exchange(ui):
    chat = ui.new_chat()
    socket = ui.socket()
    socket.generate(chat, text="Hello there", max_tokens=60)
    before, done = socket.until("done")
    types = [m["type"] for m in before]
    assert types[0] == "start" and before[0]["model"] == "tiny"
    deltas = [m["text"] for m in before if m["type"] == "delta"]
    assert len(deltas) > 5  # streamed, not one lump
    assert done["finish_reason"] == "length" and done["saved"] is True
    assert done["text"] == "".join(deltas).strip()
    assert done["stats"]["completion_tokens"] == 60
    assert done["chat"]["title"] == "Hello there"
    saved = ui.chat(chat)["messages"]
    assert [m["role"] for m in saved] == ["assistant", "user", "assistant"]
    assert saved[1]["content"] == "Hello there" and saved[2]["content"] == done["text"]
    socket.close()


def test_stop_cancels_only_that_generation_and_keeps_the_text(ui, running):
    chat = ui.new_chat()
    socket = ui.socket()
    socket.generate(chat, text="Go on and on", gid="long", max_tokens=1800)
    socket.until("delta")
    socket.send(type="stop", id="someone-else")  # not this generation: ignored
    socket.send(type="stop", id="long")
    _, done = socket.until("done")
    assert done["finish_reason"] == "cancelled"
    assert done["text"] and len(done["text"].split()) < 1800
    assert ui.chat(chat)["messages"][-1]["content"] == done["text"]
    socket.close()


def test_a_stop_from_another_socket_does_not_stop_mine(ui):
    chat_a, chat_b = ui.new_chat(), ui.new_chat()
    mine, theirs = ui.socket(), ui.socket()
    mine.generate(chat_a, text="Mine", gid="same-id", max_tokens=300)
    mine.until("delta")
    theirs.send(type="stop", id="same-id")  # the same id, but not their generation
    theirs.generate(chat_b, text="Theirs", gid="same-id", max_tokens=20)
    _, their_done = theirs.until("done")
    _, my_done = mine.until("done")
    assert their_done["finish_reason"] == "length"
    assert my_done["finish_reason"] == "length" and my_done["stats"]["completion_tokens"] == 300
    mine.close()
    theirs.close()


def test_regenerate_continue_and_impersonate(ui):
    chat = ui.new_chat()
    socket = ui.socket()
    socket.generate(chat, text="First question", max_tokens=20)
    _, first = socket.until("done")

    socket.generate(chat, action="regenerate", gid="g2", max_tokens=25, seed=5, temperature=1)
    _, second = socket.until("done")
    messages = ui.chat(chat)["messages"]
    assert [m["role"] for m in messages] == ["assistant", "user", "assistant"]  # replaced, not added
    assert messages[-1]["content"] == second["text"] != first["text"]

    socket.generate(chat, action="continue", gid="g3", max_tokens=15)
    _, third = socket.until("done")
    assert third["text"].startswith(second["text"]) and len(third["text"]) > len(second["text"])
    assert ui.chat(chat)["messages"][-1]["content"] == third["text"]

    socket.generate(chat, action="impersonate", gid="g4", text="I think", max_tokens=10)
    _, fourth = socket.until("done")
    assert fourth["text"].startswith("I think") and fourth["saved"] is False
    assert len(ui.chat(chat)["messages"]) == 3  # nothing saved
    socket.close()


def test_instruct_mode_uses_the_models_template(ui):
    chat = ui.new_chat(mode="instruct", character=None)
    socket = ui.socket()
    socket.generate(chat, text="Hi", max_tokens=10)
    before, done = socket.until("done")
    assert before[0]["template"] == "model" and done["saved"]
    socket.close()


def test_closing_the_socket_cancels_and_saves_what_was_written(ui, running):
    chat = ui.new_chat()
    socket = ui.socket()
    socket.generate(chat, text="Keep going", max_tokens=1900)
    socket.until("delta")
    socket.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        messages = ui.chat(chat)["messages"]
        if messages[-1]["role"] == "assistant" and messages[-1]["content"]:
            break
        time.sleep(0.1)
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"]
    # the slot is free again: a new generation runs to its end quickly
    other = ui.socket()
    other.generate(ui.new_chat(), text="Next", max_tokens=10)
    _, done = other.until("done", timeout=20)
    assert done["finish_reason"] == "length"
    other.close()


def test_one_generation_at_a_time_per_socket(ui):
    chat = ui.new_chat()
    socket = ui.socket()
    socket.generate(chat, text="One", gid="a", max_tokens=400)
    socket.until("delta")
    socket.generate(chat, text="Two", gid="b")
    _, error = socket.until("error")
    assert error["id"] == "b" and "still being written" in error["message"]
    socket.send(type="stop", id="a")
    socket.until("done")
    socket.close()


BAD = [
    ("not json", "not valid JSON"),
    (json.dumps([1, 2]), "Unknown message type"),
    (json.dumps({"type": "explode"}), "Unknown message type"),
    (json.dumps({"type": "stop"}), "id"),
    (json.dumps({"type": "stop", "id": "<script>"}), "id"),
    (json.dumps({"type": "generate", "id": "x", "action": "send"}), "chat"),
    (
        json.dumps(
            {
                "type": "generate",
                "id": "x",
                "action": "dance",
                "chat": {"mode": "chat", "character": "Assistant", "id": "a"},
            }
        ),
        "action",
    ),
    (
        json.dumps(
            {
                "type": "generate",
                "id": "x",
                "action": "send",
                "text": "x" * 100_001,
                "chat": {"mode": "chat", "character": "Assistant", "id": "a"},
            }
        ),
        "text",
    ),
    (
        json.dumps(
            {
                "type": "generate",
                "id": "x",
                "action": "send",
                "sampling": {"temperature": 99},
                "chat": {"mode": "chat", "character": "Assistant", "id": "a"},
            }
        ),
        "temperature",
    ),
    (  # the text rule: a lone surrogate is valid JSON but not text (see modules/inbound.py)
        '{"type": "generate", "id": "x", "action": "send", "text": "a\\udc80b", '
        '"chat": {"mode": "chat", "character": "Assistant", "id": "a"}}',
        "'text' holds text that cannot be encoded as UTF-8",
    ),
    (
        json.dumps({"type": "ping", "deep": json.loads("[" * 100 + "]" * 100)}),
        "nested more than 64 levels",
    ),
]


@pytest.mark.parametrize(("raw", "hint"), BAD)
def test_bad_messages_are_answered_and_the_socket_stays_usable(ui, raw, hint):
    socket = ui.socket()
    socket.ws.send(raw)
    error = socket.receive()
    assert error["type"] == "error" and hint in error["message"]
    socket.send(type="ping")
    assert socket.receive()["type"] == "pong"
    socket.close()


@pytest.mark.parametrize(
    ("chat", "hint"),
    [
        ({"mode": "chat", "character": "../../etc", "id": "abc"}, "character"),
        ({"mode": "chat", "character": "Nobody", "id": "abc"}, "does not exist"),
        ({"mode": "chat", "character": "Assistant", "id": "../x"}, "history id"),
        ({"mode": "instruct", "character": None, "id": "20990101-000000-000000"}, "does not exist"),
        ({"mode": "sing", "character": None, "id": "abc"}, "mode"),
    ],
)
def test_bad_chats_are_errors_for_that_generation(ui, chat, hint):
    socket = ui.socket()
    socket.send(type="generate", id="x", action="send", text="hi", chat=chat)
    error = socket.receive()
    assert error["type"] == "error" and hint in error["message"], error
    socket.close()


def test_actions_that_do_not_fit_the_chat(ui):
    chat = ui.new_chat(mode="instruct", character=None)  # empty: no greeting
    socket = ui.socket()
    for action, hint in (("regenerate", "no reply"), ("continue", "no reply"), ("send", "Type a message")):
        socket.generate(chat, action=action, gid=action)
        _, error = socket.until("error")
        assert hint in error["message"], error
    socket.close()


def test_a_message_too_large_for_the_context_is_a_message(ui):
    chat = ui.new_chat(mode="instruct", character=None)
    socket = ui.socket()
    socket.generate(chat, text="word " * 5000, max_tokens=10)
    _, error = socket.until("error")
    assert "context" in error["message"]
    assert ui.chat(chat)["messages"] == []  # nothing saved when nothing could start
    socket.close()


def test_with_no_model_loaded_the_first_message_loads_the_default(ui):
    ui.call("POST", "/ui/api/models/unload", json={})
    assert ui.call("GET", "/ui/api/status")["model"] is None
    chat = ui.new_chat()
    socket = ui.socket()
    socket.generate(chat, text="Hello", max_tokens=5)
    before, done = socket.until("done")
    assert before[0]["type"] == "status" and before[0]["message"] == "Loading tiny…"
    assert done["saved"] and ui.call("GET", "/ui/api/status")["model"]["id"] == "tiny"
    socket.close()
