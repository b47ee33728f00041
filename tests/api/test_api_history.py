"""`history_id` on chat completions: the API's conversation is saved where the browser UI
lists it, whole or streamed, continued, cut short by the client, and never outside its folder."""

from __future__ import annotations

import json
import time

import pytest
import requests
from api_helpers import assert_openai_error, post

GREETING_START = "*Ada looks up from a notebook"


def ui_chats(api, mode: str, character: str | None = None) -> list[dict]:
    params = {"mode": mode, **({"character": character} if character else {})}
    response = requests.get(api.ui_url + "/ui/api/chats", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["chats"]


def ui_chat(api, history_id: str, mode: str, character: str | None = None) -> dict:
    params = {"mode": mode, **({"character": character} if character else {})}
    response = requests.get(f"{api.ui_url}/ui/api/chats/{history_id}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def roles_and_texts(chat: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in chat["messages"]]


def test_a_chat_mode_conversation_shows_up_in_the_ui_and_follows_the_client(api, client):
    first = [{"role": "user", "content": "Hello, Ada!"}]
    reply = client.chat.completions.create(
        model="tiny",
        messages=first,
        max_tokens=6,
        temperature=0,
        extra_body={"mode": "chat", "character": "Ada", "name1": "Sam", "history_id": "api-ada-1"},
    )
    answer = reply.choices[0].message.content
    assert answer
    assert "api-ada-1" in [c["id"] for c in ui_chats(api, "chat", "Ada")]
    saved = roles_and_texts(ui_chat(api, "api-ada-1", "chat", "Ada"))
    assert [role for role, _ in saved] == ["assistant", "user", "assistant"]
    greeting = saved[0][1]
    assert greeting.startswith(GREETING_START) and "hello Sam!" in greeting  # placeholders filled
    assert saved[1:] == [("user", "Hello, Ada!"), ("assistant", answer)]

    # The client sends the whole conversation each time; the saved chat follows it.
    longer = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "And you?"}]
    again = client.chat.completions.create(
        model="tiny",
        messages=longer,
        max_tokens=4,
        temperature=0,
        extra_body={"mode": "chat", "character": "Ada", "name1": "Sam", "history_id": "api-ada-1"},
    )
    saved = roles_and_texts(ui_chat(api, "api-ada-1", "chat", "Ada"))
    assert saved[1:] == [
        ("user", "Hello, Ada!"),
        ("assistant", answer),
        ("user", "And you?"),
        ("assistant", again.choices[0].message.content),
    ]
    assert [c["id"] for c in ui_chats(api, "chat", "Ada")].count("api-ada-1") == 1


def test_a_streamed_instruct_reply_is_saved_whole(api, client):
    stream = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count."}],
        max_tokens=12,
        temperature=0,
        stream=True,
        extra_body={"history_id": "api-instruct-stream"},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    saved = roles_and_texts(ui_chat(api, "api-instruct-stream", "instruct"))
    assert saved == [("system", "Be brief."), ("user", "Count."), ("assistant", text)]


def test_continue_joins_the_saved_reply(api):
    body = {
        "messages": [
            {"role": "user", "content": "Tell me a story."},
            {"role": "assistant", "content": "Once upon a time"},
        ],
        "continue_": True,
        "max_tokens": 5,
        "temperature": 0,
        "history_id": "api-continued",
    }
    response = post(api, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    more = response.json()["choices"][0]["message"]["content"]
    saved = roles_and_texts(ui_chat(api, "api-continued", "instruct"))
    assert saved == [("user", "Tell me a story."), ("assistant", "Once upon a time" + more)]


def test_a_stream_the_client_drops_keeps_what_was_generated(api):
    body = {
        "messages": [{"role": "user", "content": "Talk for a long time."}],
        "max_tokens": 600,
        "temperature": 0,
        "stream": True,
        "history_id": "api-dropped",
    }
    seen = ""
    with requests.post(api.api_url + "/chat/completions", json=body, stream=True, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith(b"data: {"):
                seen += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if len(seen) > 10:
                break  # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while "api-dropped" not in [c["id"] for c in ui_chats(api, "instruct")]:
        assert time.monotonic() < deadline, "the dropped stream's chat was not saved"
        time.sleep(0.05)
    saved = roles_and_texts(ui_chat(api, "api-dropped", "instruct"))
    assert saved[0] == ("user", "Talk for a long time.")
    assert saved[1][0] == "assistant" and saved[1][1].startswith(seen)
    # What it would have said (greedy: the same text batched or alone): the saved reply is
    # a beginning of it. (That the generation stops is tests/api/test_api_streaming.py's.)
    whole = post(api, "/v1/chat/completions", {**body, "stream": False, "history_id": None}).json()
    assert whole["choices"][0]["message"]["content"].startswith(saved[1][1])


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden", "x" * 129, "nul\u0000byte", 7])
def test_a_history_id_that_could_leave_the_logs_folder_is_refused(api, bad):
    before = ui_chats(api, "instruct")
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "history_id": bad}
    error = assert_openai_error(post(api, "/v1/chat/completions", body), 400)
    assert error["param"] == "history_id"
    assert ui_chats(api, "instruct") == before
