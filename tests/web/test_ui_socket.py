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
        [*tiny_args(user_data, model_dir, ctx_size=2048), "--parallel", "2", "--api"],
        log_path=folder / "server.log",
        wait_for="ui",
    )
    proc.extra["user_data"] = user_data
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
    assert [m["role"] for m in messages] == ["assistant", "user", "assistant"]  # shown instead, not added
    assert messages[-1]["content"] == second["text"] != first["text"]
    assert (messages[-1]["version"], messages[-1]["versions"]) == (2, 2)  # the first is kept
    assert second["at"] == 2 and second["messages"][0]["content"] == second["text"]

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


def test_a_middle_reply_regenerated_is_a_version_that_keeps_what_followed(ui):
    chat = ui.new_chat(mode="instruct", character=None)
    socket = ui.socket()
    socket.generate(chat, text="One", max_tokens=8)
    socket.until("done")
    socket.generate(chat, text="Two", gid="g2", max_tokens=8)
    socket.until("done")
    before = ui.chat(chat)["messages"]
    socket.send(
        type="generate",
        id="g3",
        action="regenerate",
        message=before[1]["id"],
        chat={"mode": "instruct", "character": None, "id": chat["id"]},
        sampling={"max_tokens": 8, "seed": 3, "temperature": 1},
    )
    _, done = socket.until("done")
    after = ui.chat(chat)["messages"]
    assert [m["content"] for m in after] == ["One", done["text"]]
    assert (after[1]["version"], after[1]["versions"]) == (2, 2)
    back = ui.call(
        "POST",
        f"/ui/api/chats/{chat['id']}/messages/{after[1]['id']}/version",
        json={"mode": "instruct", "version": 1},
    )
    assert [m["content"] for m in ui.chat(chat)["messages"]] == [m["content"] for m in before]
    assert back["at"] == 1
    socket.close()


def test_edit_a_middle_message_and_send_it_again(ui):
    chat = ui.new_chat(mode="instruct", character=None)
    socket = ui.socket()
    for gid, text in (("a", "First"), ("b", "Second")):
        socket.generate(chat, text=text, gid=gid, max_tokens=6)
        socket.until("done")
    first = ui.chat(chat)["messages"][0]
    socket.send(
        type="generate",
        id="c",
        action="send",
        message=first["id"],
        text="First, edited",
        chat={"mode": "instruct", "character": None, "id": chat["id"]},
        sampling={"max_tokens": 6},
    )
    _, done = socket.until("done")
    messages = ui.chat(chat)["messages"]
    assert [m["content"] for m in messages] == ["First, edited", done["text"]]
    assert messages[0]["versions"] == 2 and done["at"] == 0 and len(done["messages"]) == 2
    socket.close()


def test_files_go_into_the_prompt_and_are_saved_with_the_message(ui):
    chat = ui.new_chat(mode="instruct", character=None)
    socket = ui.socket()
    socket.generate(chat, text="Plain", gid="plain", max_tokens=4)
    _, plain = socket.until("done")
    chat2 = ui.new_chat(mode="instruct", character=None)
    socket.send(
        type="generate",
        id="files",
        action="send",
        text="Plain",
        attachments=[{"name": "notes.txt", "kind": "text", "text": "lighthouse keeper " * 50}],
        chat={"mode": "instruct", "character": None, "id": chat2["id"]},
        sampling={"max_tokens": 4},
    )
    _, with_file = socket.until("done")
    assert with_file["stats"]["prompt_tokens"] >= plain["stats"]["prompt_tokens"] + 100
    saved = ui.chat(chat2)["messages"][0]
    assert saved["content"] == "Plain" and saved["attachments"] == [
        {"name": "notes.txt", "kind": "text", "chars": 900}
    ]
    socket.send(
        type="generate",
        id="huge",
        action="send",
        text="Sum up",
        attachments=[{"name": "book.txt", "kind": "text", "text": "word " * 40_000}],
        chat={"mode": "instruct", "character": None, "id": chat2["id"]},
        sampling={"max_tokens": 4},
    )
    before, done = socket.until("done")
    assert "book.txt was cut to fit" in before[0]["notices"][0] and done["notices"] == before[0]["notices"]
    assert done["stats"]["prompt_tokens"] <= 2048
    socket.send(
        type="generate",
        id="bad",
        action="send",
        text="x",
        attachments=[{"name": "../x.txt", "kind": "text", "text": "x"}],
        chat={"mode": "instruct", "character": None, "id": chat2["id"]},
    )
    _, error = socket.until("error")
    assert "is a path" in error["message"]
    socket.close()


def test_a_ui_chat_continued_through_the_api_is_one_chat(ui, running):
    import requests

    chat = ui.new_chat(mode="instruct", character=None)
    socket = ui.socket()
    socket.generate(chat, text="Hi", max_tokens=6)
    socket.until("done")
    socket.generate(chat, action="regenerate", gid="r", max_tokens=6, seed=9, temperature=1)
    socket.until("done")
    shown = ui.chat(chat)["messages"]
    body = {
        "model": "tiny",
        "messages": [{"role": m["role"], "content": m["content"]} for m in shown]
        + [{"role": "user", "content": "More"}],
        "max_tokens": 5,
        "history_id": chat["id"],
    }
    answer = requests.post(running.api_url + "/chat/completions", json=body, timeout=30).json()
    messages = ui.chat(chat)["messages"]
    assert [m["content"] for m in messages] == [
        *(m["content"] for m in shown),
        "More",
        answer["choices"][0]["message"]["content"],
    ]
    assert [m["id"] for m in messages[:2]] == [m["id"] for m in shown]
    assert messages[1]["versions"] == 2  # the versions made in the UI are still there
    assert messages[-1]["model"] == "tiny" and messages[-1]["time"]
    socket.close()


def test_an_incognito_chat_leaves_no_file(ui, running):
    logs = running.extra["user_data"] / "logs"
    before = sorted(p.name for p in logs.rglob("*.json"))
    chat = ui.call("POST", "/ui/api/chats", json={"mode": "instruct", "incognito": True})
    socket = ui.socket()
    socket.send(
        type="generate",
        id="i",
        action="send",
        text="Secret",
        chat={"mode": "instruct", "character": None, "id": chat["id"], "incognito": True},
        sampling={"max_tokens": 5},
    )
    _, done = socket.until("done")
    assert done["saved"] and done["chat"]["incognito"] is True
    shown = ui.call("GET", f"/ui/api/chats/{chat['id']}", params={"mode": "instruct", "incognito": "1"})
    assert [m["content"] for m in shown["messages"]] == ["Secret", done["text"]]
    assert sorted(p.name for p in logs.rglob("*.json")) == before
    socket.close()


def test_the_notebook_streams_stops_and_keeps_its_text(ui, running):
    notebook = ui.call("POST", "/ui/api/notebooks", json={})
    socket = ui.socket()
    socket.send(
        type="complete",
        id="n1",
        notebook=notebook["id"],
        text="Once upon a time",
        sampling={"max_tokens": 1500},
    )
    start = socket.receive()
    assert start["type"] == "start" and start["action"] == "complete" and start["cut"] is False
    socket.until("delta")
    socket.send(type="stop", id="n1")
    before, done = socket.until("done")
    assert done["finish_reason"] == "cancelled"
    written = "".join(m["text"] for m in before if m["type"] == "delta")
    assert done["text"].startswith("Once upon a time") and done["text"].endswith(written)
    saved = ui.call("GET", f"/ui/api/notebooks/{notebook['id']}")
    assert saved["text"] == done["text"] and saved["can_undo"]
    undone = ui.call("POST", f"/ui/api/notebooks/{notebook['id']}/undo")
    assert undone["text"] == "Once upon a time"
    long = "word " * 5000  # longer than the context: the model gets its end
    socket.send(type="complete", id="n2", notebook=notebook["id"], text=long, sampling={"max_tokens": 5})
    assert socket.receive()["cut"] is True
    _, done = socket.until("done")
    assert done["text"].startswith(long) and done["finish_reason"] == "length"
    socket.send(type="complete", id="n3", notebook="20990101-000000-abcdef", text="x")
    _, error = socket.until("error")
    assert "does not exist" in error["message"]
    socket.close()
