"""One saved conversation, and the edits the UI makes to it (pure functions: a new Chat).

The file keeps text-generation-webui's `internal` / `visible` pairs (the first pair is
["<|BEGIN-VISIBLE-CHAT|>", greeting] when there is a greeting; `visible` is HTML-escaped)
and, as the source of truth, `messages` in the OpenAI shape, which also holds what the
pairs cannot: system messages, tool calls and tool results.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modules.chat.messages import ChatMessage
from modules.errors import InvalidRequest

log = logging.getLogger(__name__)

BEGIN_VISIBLE = "<|BEGIN-VISIBLE-CHAT|>"
TITLE_LENGTH = 60


@dataclass(frozen=True)
class Chat:
    id: str
    mode: str  # "chat" | "chat-instruct" | "instruct"
    character: str | None  # the character key in the chat modes, None in instruct
    messages: tuple[ChatMessage, ...] = ()
    title: str = ""  # set by a rename; else the first user message stands in
    created: float = 0.0
    updated: float = 0.0

    @property
    def display_title(self) -> str:
        if self.title:
            return self.title
        first = next((m.content for m in self.messages if m.role == "user"), "")
        first = " ".join(first.split())
        if not first:
            return "New chat"
        return first if len(first) <= TITLE_LENGTH else first[: TITLE_LENGTH - 1] + "…"

    def internal(self) -> list[list[str]]:
        """[user, bot] pairs, what the model saw (tool traffic left out)."""
        pairs: list[list[str]] = []
        for m in self.messages:
            if m.role == "user":
                pairs.append([m.content, ""])
            elif m.role == "assistant" and m.content:
                if not pairs:
                    pairs.append([BEGIN_VISIBLE, m.content])
                else:
                    pairs[-1][1] = f"{pairs[-1][1]}\n\n{m.content}" if pairs[-1][1] else m.content
        return pairs

    def visible(self) -> list[list[str]]:
        return [[u if u == BEGIN_VISIBLE else html.escape(u), html.escape(b)] for u, b in self.internal()]


def messages_from_internal(
    internal: Sequence[Sequence[str]],
) -> tuple[ChatMessage, ...]:
    """Messages from text-generation-webui's pairs (for its log files, which have no others)."""
    out: list[ChatMessage] = []
    for pair in internal:
        user, bot = [*list(pair), "", ""][:2]
        if user != BEGIN_VISIBLE:
            out.append(ChatMessage("user", str(user)))
        if bot:
            out.append(ChatMessage("assistant", str(bot)))
    return tuple(out)


def _with(chat: Chat, messages: Sequence[ChatMessage]) -> Chat:
    return dataclasses.replace(chat, messages=tuple(messages), updated=time.time())


def append_exchange(chat: Chat, user: str | ChatMessage, *replies: ChatMessage | str) -> Chat:
    """The chat with a user message and the reply (or replies, for tool traffic) added."""
    new = [user if isinstance(user, ChatMessage) else ChatMessage("user", user)]
    new += [r if isinstance(r, ChatMessage) else ChatMessage("assistant", r) for r in replies]
    return _with(chat, [*chat.messages, *new])


def reply_message(
    content: str, extras: Mapping | None = None, tool_calls: Sequence[dict] = ()
) -> ChatMessage:
    """A reply to save, with what extensions added for it (`state["extras"]`) as far as it
    can be saved as JSON: an extension's odd value never costs the chat."""
    saved: dict = {}
    for key, value in (extras or {}).items():
        try:
            saved[str(key)] = json.loads(json.dumps(value))
        except (TypeError, ValueError) as e:
            log.warning("extras[%r] of a reply is not JSON (%s); it is not saved with the chat", key, e)
    return ChatMessage("assistant", content, tool_calls=tuple(tool_calls), extras=saved)


def append_reply(chat: Chat, reply: ChatMessage | str) -> Chat:
    reply = reply if isinstance(reply, ChatMessage) else ChatMessage("assistant", reply)
    return _with(chat, [*chat.messages, reply])


def _last_user_index(chat: Chat) -> int:
    for i in range(len(chat.messages) - 1, -1, -1):
        if chat.messages[i].role == "user":
            return i
    return -1


def remove_last_exchange(chat: Chat) -> tuple[Chat, str]:
    """The chat without its last user message and everything after; and that message's text
    (the UI puts it back into the input box). The greeting is never removed."""
    i = _last_user_index(chat)
    if i < 0:
        raise InvalidRequest("There is no exchange to remove.", param="history_id")
    return _with(chat, chat.messages[:i]), chat.messages[i].content


def drop_last_reply(chat: Chat) -> Chat:
    """For regenerate: everything after the last user message goes; build the prompt from the
    result, then `append_reply` the new answer."""
    i = _last_user_index(chat)
    if i < 0:
        raise InvalidRequest("There is no reply to regenerate.", param="history_id")
    return _with(chat, chat.messages[: i + 1])


def replace_last_reply(chat: Chat, text: str) -> Chat:
    """For continue: the last assistant message's text becomes `text` (old + continuation)."""
    if not chat.messages or chat.messages[-1].role != "assistant":
        raise InvalidRequest("The last message is not a reply to continue.", param="history_id")
    last = dataclasses.replace(chat.messages[-1], content=text)
    return _with(chat, [*chat.messages[:-1], last])
