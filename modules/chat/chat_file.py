"""The chat file format (JSON), and reading the files other programs write.

Format 2 (what Hearth writes; docs/chat.md#history describes it):

    {"format": 2, "id", "mode", "character", "title", "created", "updated",
     "internal": [[user, bot], ...], "visible": [...],     text-generation-webui's pairs
     "messages": [{"role", "content", ..., "id", "time", "model", "attachments"}],
     "branches": [{...a message..., "parent": 3, "next": 9}]}

`messages` is always the path shown, in the OpenAI shape with a few keys added, so any
reader that knows only `messages` (Hearth before versions, other tools) reads the chat the
UI shows. `branches` holds the other versions. Readers ignore keys they do not know; a
file whose `format` is newer than the reader's is shown but never rewritten (it may hold
what the reader would drop).

Also read: Hearth's format 1 (no ids, no branches), text-generation-webui's history JSON
(`internal`/`visible` pairs, with `metadata` since its version 3: per-message time stamps,
model names, versions and attachments) and its oldest form (`data`/`data_visible`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modules.chat.chat_log import BEGIN_VISIBLE, FORMAT, Branch, Chat, numbered
from modules.chat.messages import Attachment, ChatMessage
from modules.chat.tool_rounds import checked_rounds
from modules.errors import InvalidRequest

log = logging.getLogger(__name__)


# --- Writing -------------------------------------------------------------------------------------


def message_json(m: ChatMessage) -> dict:
    out = m.to_dict()
    if m.attachments:
        out["attachments"] = [a.to_dict() for a in m.attachments]
    if m.tool_rounds:
        out["tool_rounds"] = [dict(r) for r in m.tool_rounds]
    for key in ("id", "time", "model"):
        value = getattr(m, key)
        if value is not None:
            out[key] = value
    return out


def chat_to_json(chat: Chat) -> dict:
    return {
        "format": FORMAT,
        "id": chat.id,
        "mode": chat.mode,
        "character": chat.character,
        "title": chat.title,
        "created": chat.created,
        "updated": chat.updated,
        "internal": chat.internal(),
        "visible": chat.visible(),
        "messages": [message_json(m) for m in chat.messages],
        "branches": [
            {
                **message_json(b.message),
                "parent": b.parent,
                **({"next": b.next} if b.next is not None else {}),
            }
            for b in chat.branches
        ],
    }


# --- Reading -------------------------------------------------------------------------------------


def chat_from_json(data: Any, *, id: str, mode: str, character: str | None, mtime: float) -> Chat:
    """A chat from a file's JSON: Hearth's formats 1 and 2, or text-generation-webui's."""
    if not isinstance(data, dict):
        raise InvalidRequest("The chat is not a JSON object.")
    if isinstance(data.get("messages"), list):
        messages = tuple(read_message(m) for m in data["messages"] if isinstance(m, dict))
        branches = tuple(_read_branch(b) for b in data.get("branches") or () if isinstance(b, dict))
    else:
        messages, branches = textgen_messages(data)
    file_format = data.get("format", 1)
    chat = Chat(
        id=id,
        mode=str(data.get("mode") or mode)
        if data.get("mode") in ("chat", "chat-instruct", "instruct")
        else mode,
        character=character if mode != "instruct" else None,
        messages=messages,
        title=str(data.get("title") or "")[:200],
        created=_number(data.get("created")) or mtime,
        updated=_number(data.get("updated")) or mtime,
        branches=tuple(b for b in branches if b is not None),
        format=file_format if isinstance(file_format, int) and file_format > 0 else 1,
    )
    return numbered(_unique_ids(chat))


def read_message(data: Mapping) -> ChatMessage:
    message = ChatMessage.from_dict(dict(data))
    attachments = tuple(Attachment.from_dict(a) for a in data.get("attachments") or () if isinstance(a, dict))
    model = data.get("model")
    return dataclasses.replace(
        message,
        content=message.content if isinstance(message.content, str) else str(message.content),
        attachments=attachments,
        tool_rounds=checked_rounds(data.get("tool_rounds")),
        id=_int(data.get("id")),
        time=_number(data.get("time")),
        model=str(model)[:200] if model else None,
    )


def _read_branch(data: Mapping) -> Branch | None:
    message = read_message(data)
    if message.id is None:
        return None  # a branch must be placed: without its id nothing can point to it
    return Branch(message, _int(data.get("parent")), _int(data.get("next")))


def _unique_ids(chat: Chat) -> Chat:
    """Ids as a file gave them, except that a repeated id is dropped (given a new one)."""
    seen: set[int] = set()

    def once(m: ChatMessage) -> ChatMessage:
        if m.id is None or m.id in seen or m.id <= 0:
            return dataclasses.replace(m, id=None)
        seen.add(m.id)
        return m

    messages = tuple(once(m) for m in chat.messages)
    branches = []
    for b in chat.branches:
        m = once(b.message)
        if m.id is not None:
            branches.append(dataclasses.replace(b, message=m))
    return dataclasses.replace(chat, messages=messages, branches=tuple(branches))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value and value > 0:
        return float(value)
    return None


# --- text-generation-webui ---------------------------------------------------------------------

TEXTGEN_TIME = "%b %d, %Y %H:%M"  # its get_current_timestamp(), in local time
TEXTGEN_KINDS = {"application/pdf": "pdf", "application/docx": "docx", "text/html": "html"}


def textgen_messages(data: Mapping) -> tuple[tuple[ChatMessage, ...], tuple[Branch, ...]]:
    """The messages of text-generation-webui's history JSON, with its metadata (time stamps,
    model names, attachments). Its other versions of a message become branches: a version
    there is only a text, so each is kept as a version with nothing after it."""
    pairs = data.get("internal")
    if not isinstance(pairs, list):
        pairs = data.get("data")  # its oldest files
    if not isinstance(pairs, list):
        raise InvalidRequest("The file has no messages: no 'messages' and no 'internal' pairs.")
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    messages: list[ChatMessage] = []
    branches: list[Branch] = []
    next_free = 1

    def place(role: str, row: int, text: str) -> None:
        nonlocal next_free
        meta = metadata.get(f"{role}_{row}")
        meta = meta if isinstance(meta, dict) else {}
        parent = messages[-1].id if messages else None
        # Ids follow its order of versions, so "2/3" there is 2/3 here.
        found = meta.get("versions") or ()
        others = [v for v in found if isinstance(v, dict) and isinstance(v.get("content"), str)]
        current = meta.get("current_version_index")
        fits = isinstance(current, int) and 0 <= current < len(others) and others[current]["content"] == text
        if not fits:
            current = next((k for k, v in enumerate(others) if v["content"] == text), len(others))
        own = None
        for k in range(max(len(others), current + 1)):
            if k == current:
                own = next_free
            else:
                version = others[k]
                when = _textgen_time(version.get("timestamp"))
                other = ChatMessage(role, version["content"], id=next_free, time=when)
                branches.append(Branch(other, parent))
            next_free += 1
        messages.append(
            ChatMessage(
                role,
                text,
                id=own,
                time=_textgen_time(meta.get("timestamp")),
                model=str(meta["model_name"])[:200] if meta.get("model_name") else None,
                attachments=tuple(
                    _textgen_attachment(a)
                    for a in meta.get("attachments") or ()
                    if isinstance(a, dict) and a.get("type") != "image"  # no image input yet
                ),
            )
        )

    for row, pair in enumerate(pairs):
        if not isinstance(pair, list | tuple):
            continue
        user, bot = [*(str(x) if x is not None else "" for x in pair), "", ""][:2]
        if user and user != BEGIN_VISIBLE:
            place("user", row, user)
        if bot:
            place("assistant", row, bot)
    return tuple(messages), tuple(branches)


def _textgen_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, TEXTGEN_TIME).timestamp()
    except ValueError:
        return None


def _textgen_attachment(data: Mapping) -> Attachment:
    kind = str(data.get("type") or "text/plain")
    return Attachment(
        name=str(data.get("name") or "file")[:200],
        kind=TEXTGEN_KINDS.get(kind, "text"),
        text=str(data.get("content") or ""),
    )
