"""Searching saved chats by title and content across modes and characters."""

from __future__ import annotations

import json

from modules.chat import chat_log, versions
from modules.chat.chat_search import search_chats
from modules.chat.messages import ChatMessage


def test_a_word_in_the_middle_of_a_chat_finds_it_anywhere(history, user_data):
    ada = history.new("chat", "Ada", greeting="Hello")
    ada = history.update(
        "chat",
        "Ada",
        ada.id,
        lambda c: chat_log.append_exchange(c, "Tell me about tides", "The Moon pulls the ocean."),
    )
    history.update("chat", "Ada", ada.id, lambda c: chat_log.append_exchange(c, "Thanks", "You're welcome."))
    other = history.new("instruct")
    history.update(
        "instruct", None, other.id, lambda c: chat_log.append_exchange(c, "Bake bread", "Use flour.")
    )
    history.rename("instruct", None, other.id, "Kitchen notes")

    hits = search_chats(history, "moon")
    assert [h.summary.id for h in hits] == [ada.id]
    assert hits[0].summary.character == "Ada" and hits[0].where == "message"
    assert "Moon pulls" in hits[0].snippet
    assert [h.summary.id for h in search_chats(history, "kitchen")] == [other.id]  # the title
    assert [h.summary.id for h in search_chats(history, "MOON ocean")] == [ada.id]  # every word, any case
    assert search_chats(history, "moon bread") == []
    assert search_chats(history, "   ") == []


def test_other_versions_are_searched_and_broken_files_skipped(history, user_data):
    chat = history.new("instruct")
    chat = history.update(
        "instruct", None, chat.id, lambda c: chat_log.append_exchange(c, "q", "first answer: zebra")
    )
    history.update(
        "instruct", None, chat.id, lambda c: versions.add_version(c, 1, ChatMessage("assistant", "second"))
    )
    (user_data / "logs" / "instruct" / "broken.json").write_text("{not json")
    (user_data / "logs" / "instruct" / "escaped.json").write_text(
        json.dumps({"messages": [{"role": "user", "content": "café crème"}]}, ensure_ascii=True)
    )
    assert [h.summary.id for h in search_chats(history, "zebra")] == [chat.id]
    assert [h.summary.id for h in search_chats(history, "crème")] == ["escaped"]
    assert search_chats(history, 'say "hi"') == []  # quotes in the query: no false match, no error
