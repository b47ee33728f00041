"""Saved chats: layout, list/load/rename/delete, the UI edits, API records, unsafe ids."""

from __future__ import annotations

import json
import time

import pytest

from modules.chat import chat_log
from modules.chat.messages import ChatMessage
from modules.errors import InvalidRequest, NotFound


def test_new_chat_layout_and_file_format(history, user_data):
    chat = history.new("chat", "Ada", greeting="Hello <b>you</b>")
    chat = history.save(chat_log.append_exchange(chat, "1 < 2?", "Yes & more"))
    path = user_data / "logs" / "chat" / "Ada" / f"{chat.id}.json"
    data = json.loads(path.read_text())
    assert data["internal"] == [
        ["<|BEGIN-VISIBLE-CHAT|>", "Hello <b>you</b>"],
        ["1 < 2?", "Yes & more"],
    ]
    assert data["visible"] == [
        ["<|BEGIN-VISIBLE-CHAT|>", "Hello &lt;b&gt;you&lt;/b&gt;"],
        ["1 &lt; 2?", "Yes &amp; more"],
    ]
    assert [m["role"] for m in data["messages"]] == ["assistant", "user", "assistant"]
    instruct = history.new("instruct")
    assert (user_data / "logs" / "instruct" / f"{instruct.id}.json").is_file()
    assert instruct.character is None


def test_list_newest_first_with_titles(history):
    first = history.new("chat", "Ada")
    time.sleep(0.01)
    second = history.new("chat", "Ada")
    history.save(chat_log.append_exchange(first, "  What   is a\nbridge?  " + "x" * 100, "…"))
    listed = history.list("chat", "Ada")
    assert [c.id for c in listed] == [first.id, second.id]  # first was updated last
    assert listed[0].title.startswith("What is a bridge? xxx") and len(listed[0].title) == 60
    assert listed[1].title == "New chat"
    assert history.list("chat", "Nobody") == []


def test_load_rename_delete(history):
    chat = history.save(chat_log.append_exchange(history.new("instruct"), "Hi", "Hello"))
    assert history.load("instruct", None, chat.id).messages == chat.messages
    history.rename("instruct", None, chat.id, "  My\ttitle ")
    assert history.load("instruct", None, chat.id).title == "My title"
    assert history.list("instruct")[0].title == "My title"
    history.delete("instruct", None, chat.id)
    with pytest.raises(NotFound):
        history.load("instruct", None, chat.id)
    with pytest.raises(NotFound):
        history.delete("instruct", None, chat.id)


def test_ui_edits(history):
    chat = history.new("chat", "Ada", greeting="Hi!")
    chat = chat_log.append_exchange(chat, "one", "reply one")
    chat = chat_log.append_exchange(chat, "two", "reply two")
    regen = chat_log.drop_last_reply(chat)
    assert regen.messages[-1] == ChatMessage("user", "two")
    regen = chat_log.append_reply(regen, "better two")
    assert regen.internal()[-1] == ["two", "better two"]
    cont = chat_log.replace_last_reply(regen, "better two, continued")
    assert cont.internal()[-1] == ["two", "better two, continued"]
    removed, text = chat_log.remove_last_exchange(cont)
    assert text == "two" and removed.internal() == [
        ["<|BEGIN-VISIBLE-CHAT|>", "Hi!"],
        ["one", "reply one"],
    ]
    removed, _ = chat_log.remove_last_exchange(removed)
    with pytest.raises(InvalidRequest):
        chat_log.remove_last_exchange(removed)  # only the greeting is left
    saved = history.update("chat", "Ada", chat.id, lambda c: chat_log.append_exchange(c, "u", "b"))
    assert history.load("chat", "Ada", chat.id).messages == saved.messages


def test_tool_traffic_is_kept_in_messages(history):
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    chat = chat_log.append_exchange(
        history.new("instruct"),
        "use f",
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "42", tool_call_id="c1"),
        "It is 42.",
    )
    history.save(chat)
    loaded = history.load("instruct", None, chat.id)
    assert loaded.messages[1].tool_calls == (call,) and loaded.messages[2].tool_call_id == "c1"
    assert loaded.internal() == [["use f", "It is 42."]]


def test_api_records_under_a_chosen_history_id(history):
    msgs = [ChatMessage("system", "sys"), ChatMessage("user", "Hi")]
    chat = history.record(
        "chat",
        "Ada",
        "my-api-chat",
        msgs,
        ChatMessage("assistant", "Hello"),
        greeting="Greetings",
    )
    assert [m.role for m in chat.messages] == [
        "system",
        "assistant",
        "user",
        "assistant",
    ]
    history.rename("chat", "Ada", "my-api-chat", "Kept title")
    longer = [*msgs, ChatMessage("assistant", "Hello"), ChatMessage("user", "More")]
    again = history.record(
        "chat",
        "Ada",
        "my-api-chat",
        longer,
        ChatMessage("assistant", "Sure"),
        greeting="Greetings",
    )
    assert again.title == "Kept title"
    assert again.internal() == [
        ["<|BEGIN-VISIBLE-CHAT|>", "Greetings"],
        ["Hi", "Hello"],
        ["More", "Sure"],
    ]
    assert [c.id for c in history.list("chat", "Ada")] == ["my-api-chat"]


def test_text_generation_webui_logs_load(history, user_data):
    folder = user_data / "logs" / "chat" / "Ada"
    folder.mkdir(parents=True)
    (folder / "20230101-10-00-00.json").write_text(
        json.dumps({"internal": [["<|BEGIN-VISIBLE-CHAT|>", "Hi"], ["q", "a"]], "visible": []})
    )
    chat = history.load("chat", "Ada", "20230101-10-00-00")
    assert [(m.role, m.content) for m in chat.messages] == [
        ("assistant", "Hi"),
        ("user", "q"),
        ("assistant", "a"),
    ]


def test_broken_files_and_temp_files_are_skipped_in_lists(history, user_data):
    chat = history.new("instruct")
    folder = user_data / "logs" / "instruct"
    (folder / "broken.json").write_text("{not json")
    (folder / f".{chat.id}.json.abc.tmp").write_text("{}")
    assert [c.id for c in history.list("instruct")] == [chat.id]


UNSAFE_IDS = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "x\0y",
    "..",
    "",
    ".hidden",
]


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_unsafe_history_ids_are_refused(history, bad):
    for action in (
        lambda: history.load("instruct", None, bad),
        lambda: history.delete("instruct", None, bad),
        lambda: history.rename("instruct", None, bad, "t"),
        lambda: history.record("instruct", None, bad, [ChatMessage("user", "x")], None),
    ):
        with pytest.raises(InvalidRequest):
            action()


@pytest.mark.parametrize("bad", ["../x", "/abs", "x\0y", ".."])
def test_unsafe_character_folders_are_refused(history, bad):
    with pytest.raises(InvalidRequest):
        history.new("chat", bad)
    with pytest.raises(InvalidRequest):
        history.list("chat", bad)


def test_invalid_mode_and_missing_character(history):
    with pytest.raises(InvalidRequest):
        history.new("story")
    with pytest.raises(InvalidRequest):
        history.new("chat", None)


def test_a_replys_extras_are_saved_and_read_back_but_never_reach_a_template(history, user_data):
    from modules.chat.tools import template_message

    sources = {"localdocs": {"sources": [{"path": "/notes/a.md", "score": 0.8}]}}
    chat = history.new("instruct")
    chat = history.save(chat_log.append_reply(chat, chat_log.reply_message("Yes.", sources)))
    data = json.loads((user_data / "logs" / "instruct" / f"{chat.id}.json").read_text())
    assert data["messages"][-1]["extras"] == sources
    loaded = history.load("instruct", None, chat.id)
    assert loaded.messages[-1].extras == sources
    assert "extras" not in template_message(loaded.messages[-1])
    continued = history.save(chat_log.replace_last_reply(loaded, "Yes. And more."))
    assert continued.messages[-1].extras == sources  # a continued reply keeps its extras


def test_extras_that_are_not_json_are_left_out_not_the_chat(history, caplog):
    reply = chat_log.reply_message("Hi", {"fine": [1, "two"], "odd": object(), "loop": {1: {2}}})
    assert reply.extras == {"fine": [1, "two"]}
    assert "'odd'" in caplog.text and "'loop'" in caplog.text
    chat = history.save(chat_log.append_reply(history.new("instruct"), reply))
    assert history.load("instruct", None, chat.id).messages[-1].extras == {"fine": [1, "two"]}
