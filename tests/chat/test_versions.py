"""Versions and branches of a chat: nothing is lost by regenerating, editing, switching,
continuing or an API request that rewrites the conversation; the file keeps all of it."""

from __future__ import annotations

import json

import pytest

from modules.chat import chat_log, versions
from modules.chat.chat_file import chat_from_json, chat_to_json
from modules.chat.chat_log import Chat
from modules.chat.messages import Attachment, ChatMessage
from modules.errors import InvalidRequest, NotFound


def texts(chat: Chat) -> list[str]:
    return [m.content for m in chat.messages]


def every_text(chat: Chat) -> set[str]:
    return {m.content for m in chat.all_messages()}


@pytest.fixture
def chat() -> Chat:
    chat = Chat("c1", "instruct", None)
    return chat_log.append_exchange(chat_log.append_exchange(chat, "u1", "a1"), "u2", "a2")


def test_every_message_gets_an_id_and_a_time(chat):
    ids = [m.id for m in chat.messages]
    assert ids == [1, 2, 3, 4]
    assert all(m.time for m in chat.messages)
    more = chat_log.append_reply(chat, "a2 again")
    assert more.messages[-1].id == 5


def test_regenerate_keeps_every_version_and_switching_shows_each(chat):
    second = versions.add_version(chat, 3, ChatMessage("assistant", "a2 v2"))
    third = versions.add_version(second, 3, ChatMessage("assistant", "a2 v3"))
    assert texts(third) == ["u1", "a1", "u2", "a2 v3"]
    assert versions.version_numbers(third)[3] == (3, 3)
    assert versions.version_numbers(third)[:3] == [(1, 1)] * 3
    first = versions.switch_version(third, 3, 1)
    assert texts(first) == ["u1", "a1", "u2", "a2"]
    assert versions.version_numbers(first)[3] == (1, 3)
    assert every_text(first) == every_text(third)
    assert texts(versions.switch_version(first, 3, 2))[-1] == "a2 v2"
    with pytest.raises(InvalidRequest):
        versions.switch_version(first, 3, 4)


def test_a_version_keeps_what_followed_it(chat):
    """Regenerate a middle reply: the rest of the chat stays with the old version."""
    branched = versions.add_version(chat, 1, ChatMessage("assistant", "a1 v2"))
    assert texts(branched) == ["u1", "a1 v2"]
    more = chat_log.append_exchange(branched, "u2 on v2", "a2 on v2")
    back = versions.switch_version(more, 1, 1)
    assert texts(back) == ["u1", "a1", "u2", "a2"]
    again = versions.switch_version(back, 1, 2)
    assert texts(again) == ["u1", "a1 v2", "u2 on v2", "a2 on v2"]


def test_nested_versions_come_back_as_they_were(chat):
    reply = versions.add_version(chat, 3, ChatMessage("assistant", "a2 v2"))  # a2: 2/2
    edited = versions.add_version(reply, 2, ChatMessage("user", "u2 edited"))  # u2: 2/2
    edited = chat_log.append_reply(edited, "answer to the edit")
    back = versions.switch_version(edited, 2, 1)
    assert texts(back) == ["u1", "a1", "u2", "a2 v2"]  # the version that was shown, with its own
    assert versions.version_numbers(back)[3] == (2, 2)
    assert texts(versions.switch_version(back, 3, 1))[-1] == "a2"


def test_edit_is_a_new_version_that_keeps_what_followed(chat):
    edited = versions.edit_message(chat, 1, "u1, fixed")
    assert texts(edited) == ["u1, fixed", "a1", "u2", "a2"]
    assert versions.version_numbers(edited)[0] == (2, 2)
    old = versions.switch_version(edited, 0, 1)
    assert texts(old) == ["u1", "a1", "u2", "a2"]
    assert versions.edit_message(chat, 1, "u1") is chat  # no change, no version
    with pytest.raises(NotFound):
        versions.edit_message(chat, 99, "x")


def test_continue_on_a_version_keeps_every_versions_text(chat):
    two = versions.add_version(chat, 3, ChatMessage("assistant", "a2 v2"))
    first = versions.switch_version(two, 3, 1)
    grown = versions.grow_message(first, first.messages[3].id, "a2 and more")
    assert texts(grown)[-1] == "a2 and more"
    assert "a2 v2" in every_text(grown)  # the other version is untouched
    assert versions.version_numbers(grown)[3] == (1, 2)


def test_remove_last_prunes_the_place_and_what_hangs_off_it(chat):
    two = versions.add_version(chat, 3, ChatMessage("assistant", "a2 v2"))
    removed, text = chat_log.remove_last_exchange(two)
    assert text == "u2" and texts(removed) == ["u1", "a1"]
    assert removed.branches == ()
    assert every_text(removed) == {"u1", "a1"}


def test_add_after_keeps_a_reply_whose_place_left_the_path(chat):
    reply = versions.add_after(chat, 3, ChatMessage("assistant", "a2 v2"))
    assert texts(reply)[-1] == "a2 v2"
    other = versions.add_version(chat, 2, ChatMessage("user", "another u2"))  # 3 left the path
    kept = versions.add_after(other, 3, ChatMessage("assistant", "late reply"))
    assert texts(kept) == texts(other)
    assert "late reply" in every_text(kept)


def test_a_reply_goes_after_its_question_when_another_writer_sent_meanwhile(chat):
    """Two tabs in one chat: B's question came while A's reply was written. A's reply goes
    right after A's question, B's follows; a reply is a version only of a reply."""
    asked = chat_log.append_exchange(chat, "A asks")  # id 5, no reply yet
    both = chat_log.append_exchange(asked, "B asks")  # id 6
    answered = versions.add_after(both, 5, ChatMessage("assistant", "answer to A"))
    assert texts(answered)[-3:] == ["A asks", "answer to A", "B asks"] and answered.branches == ()
    done = versions.add_after(answered, 6, ChatMessage("assistant", "answer to B"))
    assert texts(done)[-4:] == ["A asks", "answer to A", "B asks", "answer to B"]


def test_merge_path_keeps_what_the_request_repeats_and_versions_what_differs(chat):
    same = versions.merge_path(chat, [ChatMessage(m.role, m.content) for m in chat.messages])
    assert same == chat and [m.id for m in same.messages] == [1, 2, 3, 4]
    longer = versions.merge_path(
        chat, [*(ChatMessage(m.role, m.content) for m in chat.messages), ChatMessage("user", "u3")]
    )
    assert [m.id for m in longer.messages][:4] == [1, 2, 3, 4] and texts(longer)[-1] == "u3"
    rewritten = versions.merge_path(chat, [ChatMessage("user", "u1"), ChatMessage("assistant", "a1 other")])
    assert texts(rewritten) == ["u1", "a1 other"]
    assert versions.version_numbers(rewritten)[1] == (2, 2)
    assert texts(versions.switch_version(rewritten, 1, 1)) == ["u1", "a1", "u2", "a2"]
    grown = versions.merge_path(
        chat,
        [*(ChatMessage(m.role, m.content) for m in chat.messages[:3]), ChatMessage("assistant", "a2 and on")],
    )
    assert texts(grown)[-1] == "a2 and on" and grown.messages[-1].id == 4 and grown.branches == ()


def test_the_file_keeps_versions_ids_times_models_and_files(chat):
    two = versions.add_version(chat, 3, ChatMessage("assistant", "a2 v2", model="Tiny"))
    two = chat_log.append_exchange(
        two, ChatMessage("user", "see file", attachments=(Attachment("a.txt", "text", "A"),))
    )
    data = json.loads(json.dumps(chat_to_json(two)))
    assert data["format"] == 2
    assert [m["content"] for m in data["messages"]] == texts(two)
    assert data["messages"][3]["model"] == "Tiny"
    assert data["messages"][-1]["attachments"] == [{"name": "a.txt", "kind": "text", "text": "A"}]
    assert data["branches"][0]["content"] == "a2" and data["branches"][0]["parent"] == 3
    back = chat_from_json(data, id="c1", mode="instruct", character=None, mtime=0.0)
    assert back.messages == two.messages and [m.id for m in back.messages] == [m.id for m in two.messages]
    assert back.branches == two.branches
    assert [m.time for m in back.messages] == [m.time for m in two.messages]


def test_older_files_load_with_ids():
    old = {
        "id": "x",
        "mode": "chat",
        "title": "",
        "messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Yo"}],
    }
    chat = chat_from_json(old, id="x", mode="chat", character="Ada", mtime=1.0)
    assert texts(chat) == ["Hi", "Yo"] and [m.id for m in chat.messages] == [1, 2] and chat.format == 1
    pairs = {"internal": [["<|BEGIN-VISIBLE-CHAT|>", "Hello"], ["q", "a"]], "visible": []}
    assert texts(chat_from_json(pairs, id="x", mode="chat", character="Ada", mtime=1.0)) == [
        "Hello",
        "q",
        "a",
    ]
    oldest = {"data": [["q", "a"]], "data_visible": [["q", "a"]]}
    assert texts(chat_from_json(oldest, id="x", mode="instruct", character=None, mtime=1.0)) == ["q", "a"]


def test_repeated_or_broken_ids_in_a_file_are_repaired():
    data = {
        "messages": [
            {"role": "user", "content": "a", "id": 5},
            {"role": "assistant", "content": "b", "id": 5},
        ],
        "branches": [{"role": "assistant", "content": "c", "id": "x", "parent": 5}, "junk"],
    }
    chat = chat_from_json(data, id="x", mode="instruct", character=None, mtime=1.0)
    ids = [m.id for m in chat.all_messages()]
    assert len(set(ids)) == len(ids) and texts(chat) == ["a", "b"]


def test_textgen_history_with_metadata_versions_and_files():
    data = {
        "internal": [["<|BEGIN-VISIBLE-CHAT|>", "Hello!"], ["Read this", "It says hi."]],
        "visible": [["<|BEGIN-VISIBLE-CHAT|>", "Hello!"], ["Read this", "It says hi."]],
        "metadata": {
            "assistant_0": {"timestamp": "Jan 05, 2025 10:30"},
            "user_1": {
                "timestamp": "Jan 05, 2025 10:31",
                "attachments": [
                    {"name": "notes.txt", "type": "text/plain", "content": "hi there"},
                    {"name": "cat.png", "type": "image", "image_data": "data:image/png;base64,AAAA"},
                ],
            },
            "assistant_1": {
                "timestamp": "Jan 05, 2025 10:32",
                "model_name": "Qwen3-8B",
                "versions": [
                    {
                        "content": "An older answer.",
                        "visible_content": "An older answer.",
                        "timestamp": "Jan 05, 2025 10:31",
                    },
                    {
                        "content": "It says hi.",
                        "visible_content": "It says hi.",
                        "timestamp": "Jan 05, 2025 10:32",
                    },
                ],
                "current_version_index": 1,
            },
        },
    }
    chat = chat_from_json(data, id="x", mode="chat", character="Ada", mtime=1.0)
    assert texts(chat) == ["Hello!", "Read this", "It says hi."]
    assert chat.messages[2].model == "Qwen3-8B" and chat.messages[2].time
    assert chat.messages[1].attachments == (Attachment("notes.txt", "text", "hi there"),)
    assert versions.version_numbers(chat)[2] == (2, 2)
    assert texts(versions.switch_version(chat, 2, 1))[-1] == "An older answer."


def test_a_file_from_a_newer_hearth_is_read_but_never_rewritten(history, user_data):
    chat = history.new("instruct")
    path = user_data / "logs" / "instruct" / f"{chat.id}.json"
    data = json.loads(path.read_text())
    data["format"] = 99
    data["future"] = {"something": "new"}
    path.write_text(json.dumps(data))
    loaded = history.load("instruct", None, chat.id)
    assert loaded.format == 99
    with pytest.raises(InvalidRequest, match="newer Hearth"):
        history.update("instruct", None, chat.id, lambda c: chat_log.append_exchange(c, "x", "y"))
    assert json.loads(path.read_text())["future"] == {"something": "new"}


def test_history_record_from_the_api_keeps_ui_versions(history):
    chat = history.new("instruct")
    chat = history.update("instruct", None, chat.id, lambda c: chat_log.append_exchange(c, "q", "a"))
    chat = history.update(
        "instruct", None, chat.id, lambda c: versions.add_version(c, 1, ChatMessage("assistant", "a v2"))
    )
    sent = [ChatMessage("user", "q"), ChatMessage("assistant", "a v2"), ChatMessage("user", "more")]
    recorded = history.record("instruct", None, chat.id, sent, ChatMessage("assistant", "sure"))
    assert texts(recorded) == ["q", "a v2", "more", "sure"]
    assert versions.version_numbers(recorded)[1] == (2, 2)  # the UI's versions are still there
    assert "a" in every_text(history.load("instruct", None, chat.id))
