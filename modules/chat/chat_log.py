"""One saved conversation, and the edits the UI makes to it (pure functions: a new Chat).

A chat is a tree of messages: `messages` is the current path (what the UI shows and the
prompt is built from), and `branches` holds every other version of a message and what
followed it (modules/chat/versions.py edits them). The file format is in chat_file.py.

Every message of a chat has an id, unique in the chat and growing with each message
added; edits give new messages their id and time (`_with`).
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
FORMAT = 2  # the chat file format this Hearth writes (chat_file.py)


@dataclass(frozen=True)
class Branch:
    """A message off the current path: another version of a message, or what followed one.

    `parent` is the id of the message it answers (None: it opens the chat); `next` the id
    of the message that followed it on its own branch, if any."""

    message: ChatMessage
    parent: int | None
    next: int | None = None


@dataclass(frozen=True)
class Chat:
    id: str
    mode: str  # "chat" | "chat-instruct" | "instruct"
    character: str | None  # the character key in the chat modes, None in instruct
    messages: tuple[ChatMessage, ...] = ()
    title: str = ""  # set by a rename; else the first user message stands in
    created: float = 0.0
    updated: float = 0.0
    branches: tuple[Branch, ...] = ()
    format: int = FORMAT  # of the file it was read from; a newer one is never rewritten

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

    def all_messages(self) -> list[ChatMessage]:
        return [*self.messages, *(b.message for b in self.branches)]


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


# --- Ids ---------------------------------------------------------------------------------------


def next_id(chat: Chat) -> int:
    return max((m.id or 0 for m in chat.all_messages()), default=0) + 1


def numbered(chat: Chat, *, stamp: float | None = None) -> Chat:
    """The chat with an id on every message that has none (in path order, then branches),
    and, with `stamp`, that time on them: they are new."""
    if all(m.id is not None for m in chat.all_messages()):
        return chat
    counter = iter(range(next_id(chat), 1 << 62))

    def fresh(m: ChatMessage) -> ChatMessage:
        if m.id is not None:
            return m
        return dataclasses.replace(m, id=next(counter), time=m.time if stamp is None else m.time or stamp)

    messages = tuple(fresh(m) for m in chat.messages)
    branches = tuple(dataclasses.replace(b, message=fresh(b.message)) for b in chat.branches)
    return dataclasses.replace(chat, messages=messages, branches=branches)


def _with(chat: Chat, messages: Sequence[ChatMessage], branches: Sequence[Branch] | None = None) -> Chat:
    """The chat with a new path (and branches); new messages get their id and time."""
    now = time.time()
    changed = dataclasses.replace(
        chat,
        messages=tuple(messages),
        branches=chat.branches if branches is None else tuple(branches),
        updated=now,
    )
    return numbered(changed, stamp=now)


# --- The UI's edits at the end of the chat -------------------------------------------------------


def append_exchange(chat: Chat, user: str | ChatMessage, *replies: ChatMessage | str) -> Chat:
    """The chat with a user message and the reply (or replies, for tool traffic) added."""
    new = [user if isinstance(user, ChatMessage) else ChatMessage("user", user)]
    new += [r if isinstance(r, ChatMessage) else ChatMessage("assistant", r) for r in replies]
    return _with(chat, [*chat.messages, *new])


def reply_message(
    content: str, extras: Mapping | None = None, tool_calls: Sequence[dict] = (), model: str | None = None
) -> ChatMessage:
    """A reply to save, with what extensions added for it (`state["extras"]`) as far as it
    can be saved as JSON: an extension's odd value never costs the chat."""
    saved: dict = {}
    for key, value in (extras or {}).items():
        try:
            saved[str(key)] = json.loads(json.dumps(value))
        except (TypeError, ValueError) as e:
            log.warning("extras[%r] of a reply is not JSON (%s); it is not saved with the chat", key, e)
    return ChatMessage("assistant", content, tool_calls=tuple(tool_calls), extras=saved, model=model)


def append_reply(chat: Chat, reply: ChatMessage | str) -> Chat:
    reply = reply if isinstance(reply, ChatMessage) else ChatMessage("assistant", reply)
    return _with(chat, [*chat.messages, reply])


def last_user_index(chat: Chat) -> int:
    for i in range(len(chat.messages) - 1, -1, -1):
        if chat.messages[i].role == "user":
            return i
    return -1


def remove_last_exchange(chat: Chat) -> tuple[Chat, str]:
    """The chat without its last user message and everything after (their other versions
    too); and that message's text (the UI puts it back into the input box). The greeting is
    never removed."""
    from modules.chat.versions import cut_path

    i = last_user_index(chat)
    if i < 0:
        raise InvalidRequest("There is no exchange to remove.", param="history_id")
    return cut_path(chat, i), chat.messages[i].content


def drop_last_reply(chat: Chat) -> Chat:
    """The conversation a new version of the last reply answers: everything after the last
    user message goes (build the prompt from it; `versions.add_version` saves the answer)."""
    i = last_user_index(chat)
    if i < 0:
        raise InvalidRequest("There is no reply to regenerate.", param="history_id")
    return dataclasses.replace(chat, messages=chat.messages[: i + 1])


def replace_last_reply(chat: Chat, text: str) -> Chat:
    """For continue: the last assistant message's text becomes `text` (old + continuation).
    Only the version shown changes; the others keep their text."""
    if not chat.messages or chat.messages[-1].role != "assistant":
        raise InvalidRequest("The last message is not a reply to continue.", param="history_id")
    last = dataclasses.replace(chat.messages[-1], content=text)
    return _with(chat, [*chat.messages[:-1], last])
