"""Searching saved chats by title and content, across every mode and character.

A chat matches when every word of the query is in its title or its messages (any version,
any case); the result quotes the first message that holds the first word. Files whose raw
text cannot hold the words are skipped before they are parsed, so a search over thousands
of chats reads each file once and parses only the likely ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from modules.chat.chat_log import Chat
from modules.chat.files import TEMP_SUFFIX
from modules.chat.history import ChatSummary, HistoryStore
from modules.errors import InvalidRequest

log = logging.getLogger(__name__)

MAX_RESULTS = 50
SNIPPET = 160  # characters around the match


@dataclass(frozen=True)
class SearchHit:
    summary: ChatSummary
    snippet: str  # where the first word was found, with some text around it
    where: str  # "title" | "message"


def search_chats(store: HistoryStore, query: str, limit: int = MAX_RESULTS) -> list[SearchHit]:
    words = [w.casefold() for w in query.split()]
    if not words:
        return []
    hits: list[SearchHit] = []
    for mode, character in store.places():
        folder = store.folder(mode, character)
        if not folder.is_dir():
            continue
        for path in folder.glob("*.json"):
            if path.name.startswith(".") or path.name.endswith(TEMP_SUFFIX):
                continue
            try:
                raw = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if not _may_hold(raw, words):
                continue
            try:
                chat = store.load(mode, character, path.stem)
            except InvalidRequest as e:
                log.warning("Search skips %s: %s", path, e.message)
                continue
            hit = match(chat, words)
            if hit is not None:
                hits.append(hit)
    hits.sort(key=lambda h: (h.summary.updated, h.summary.id), reverse=True)
    return hits[:limit]


def _may_hold(raw: str, words: list[str]) -> bool:
    """A quick test on the file's text: JSON escapes quotes, backslashes and control
    characters, so words with those are left to the real test."""
    if "\\u" in raw:  # written with escaped letters (ensure_ascii): test the parsed text
        return True
    folded = raw.casefold()
    return all(w in folded for w in words if w.isprintable() and '"' not in w and "\\" not in w)


def match(chat: Chat, words: list[str]) -> SearchHit | None:
    texts = [chat.display_title, *(m.content for m in chat.all_messages())]
    folded = [t.casefold() for t in texts]
    if not all(any(w in t for t in folded) for w in words):
        return None
    summary = ChatSummary(chat.id, chat.mode, chat.character, chat.display_title, chat.updated)
    first = words[0]
    for i, text in enumerate(folded[1:], 1):
        at = text.find(first)
        if at >= 0:
            return SearchHit(summary, _snippet(texts[i], at, len(first)), "message")
    return SearchHit(summary, chat.display_title, "title")


def _snippet(text: str, at: int, length: int) -> str:
    start = max(0, at - SNIPPET // 2)
    end = min(len(text), at + length + SNIPPET // 2)
    piece = " ".join(text[start:end].split())
    return ("…" if start else "") + piece + ("…" if end < len(text) else "")
