"""Versions and branches of a chat: pure functions from a Chat to a new Chat.

A chat is a tree. `chat.messages` is the path shown; every other message is a `Branch`
that knows its parent (the message it follows) and the message that followed it on its own
branch (`next`). The versions of a message are its siblings: the messages with the same
parent, in the order they were written (their ids grow). Switching to another version puts
that version and its own continuation on the path, and moves the rest of the old path into
the branches, so nothing is ever lost by regenerating, editing or switching.

- `add_version`: a new version of the message at a place (regenerate, edit and send);
- `edit_message`: a new version with new text that keeps what followed (the old version
  keeps its own copy);
- `switch_version`: show version k of the message at a place;
- `cut_path`: remove a place and everything after it (remove last);
- `merge_path`: a conversation an API request sent, merged into the saved chat (the
  matching start keeps its ids, times and versions; what differs becomes a new version).
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from modules.chat.chat_log import Branch, Chat, _with, next_id
from modules.chat.messages import ChatMessage
from modules.errors import InvalidRequest, NotFound


def index_of(chat: Chat, message_id: int) -> int:
    """The place on the path of the message with this id."""
    for i, m in enumerate(chat.messages):
        if m.id == message_id:
            return i
    raise NotFound(f"The chat has no message {message_id} on the path shown.", param="message")


def parent_at(chat: Chat, index: int) -> int | None:
    return chat.messages[index - 1].id if index > 0 else None


def _off_path(path: Sequence[ChatMessage], parent: int | None) -> list[Branch]:
    """A stretch of path as branches, each knowing what came before and after it."""
    out = []
    for j, m in enumerate(path):
        before = parent if j == 0 else path[j - 1].id
        after = path[j + 1].id if j + 1 < len(path) else None
        out.append(Branch(m, before, after))
    return out


def siblings(chat: Chat, index: int) -> list[ChatMessage]:
    """Every version of the message at `index`, in the order they were written."""
    parent = parent_at(chat, index)
    found = [chat.messages[index], *(b.message for b in chat.branches if b.parent == parent)]
    return sorted(found, key=lambda m: m.id or 0)


def version_numbers(chat: Chat) -> list[tuple[int, int]]:
    """For each message of the path: (its version number from 1, the number of versions)."""
    others: dict[int | None, list[int]] = defaultdict(list)
    for b in chat.branches:
        others[b.parent].append(b.message.id or 0)
    out = []
    for i, m in enumerate(chat.messages):
        ids = others.get(parent_at(chat, i), [])
        mine = m.id or 0
        out.append((1 + sum(1 for x in ids if x < mine), 1 + len(ids)))
    return out


def add_version(chat: Chat, index: int, message: ChatMessage) -> Chat:
    """`message` as a new version of the message at `index` (or as a new last message when
    `index` is the path's length). What the path held from `index` on stays, as a branch."""
    if not 0 <= index <= len(chat.messages):
        raise InvalidRequest("There is no message at that place.", param="message")
    moved = _off_path(chat.messages[index:], parent_at(chat, index))
    fresh = dataclasses.replace(message, id=None, time=None)
    return _with(chat, [*chat.messages[:index], fresh], [*chat.branches, *moved])


def add_after(chat: Chat, parent: int | None, message: ChatMessage) -> Chat:
    """`message` as the next message after the message `parent` (None: the chat's start): a
    new version of what follows it on the path (a message of the same role), or the last
    message. When `parent` has left the path meanwhile (another tab switched versions), the
    message is kept as a branch."""
    if parent is None:
        return add_version(chat, 0, message)
    try:
        index = index_of(chat, parent) + 1
    except NotFound:
        if parent not in {b.message.id for b in chat.branches}:
            raise
        fresh = dataclasses.replace(message, id=None, time=None)
        return _with(chat, chat.messages, [*chat.branches, Branch(fresh, parent)])
    following = chat.messages[index] if index < len(chat.messages) else None
    if following is not None and following.role != message.role:
        # Another writer's message came after `parent` meanwhile (two tabs, or a tab and the
        # API, in one chat): the reply goes right after its question and theirs follows it,
        # as in a log; a reply is a version only of a reply.
        fresh = dataclasses.replace(message, id=None, time=None)
        return _with(chat, [*chat.messages[:index], fresh, *chat.messages[index:]])
    return add_version(chat, index, message)


def grow_message(chat: Chat, message_id: int, text: str) -> Chat:
    """The message `message_id`, wherever it is, with the text `text` (a continued reply):
    every other version keeps its own text."""
    messages = [dataclasses.replace(m, content=text) if m.id == message_id else m for m in chat.messages]
    branches = [
        dataclasses.replace(b, message=dataclasses.replace(b.message, content=text))
        if b.message.id == message_id
        else b
        for b in chat.branches
    ]
    if not any(m.id == message_id for m in chat.all_messages()):
        raise NotFound("The reply to continue is no longer in the chat.", param="message")
    return _with(chat, messages, branches)


def edit_message(chat: Chat, message_id: int, text: str) -> Chat:
    """The message with new text, as a new version that keeps what followed it (a copy:
    the old version keeps its own). Files attached to it stay attached."""
    index = index_of(chat, message_id)
    old = chat.messages[index]
    if old.content == text:
        return chat
    if old.role not in ("user", "assistant", "system"):
        raise InvalidRequest("Only user, assistant and system messages can be edited.", param="message")
    moved = _off_path(chat.messages[index:], parent_at(chat, index))
    start, now = next_id(chat), time.time()
    copies = [
        dataclasses.replace(
            m, id=start + j, content=text if j == 0 else m.content, time=now if j == 0 else m.time
        )
        for j, m in enumerate(chat.messages[index:])
    ]
    return _with(chat, [*chat.messages[:index], *copies], [*chat.branches, *moved])


def switch_version(chat: Chat, index: int, number: int) -> Chat:
    """Show version `number` (from 1) of the message at `index`, with its own continuation."""
    versions = siblings(chat, index)
    if not 1 <= number <= len(versions):
        raise InvalidRequest(f"That message has versions 1 to {len(versions)}.", param="version")
    target = versions[number - 1]
    if target.id == chat.messages[index].id:
        return chat
    by_id = {b.message.id: b for b in chat.branches}
    chain = [by_id[target.id]]
    while chain[-1].next is not None and chain[-1].next in by_id and len(chain) <= len(by_id):
        chain.append(by_id[chain[-1].next])
    taken = {b.message.id for b in chain}
    kept = [b for b in chat.branches if b.message.id not in taken]
    moved = _off_path(chat.messages[index:], parent_at(chat, index))
    path = [*chat.messages[:index], *(b.message for b in chain)]
    return dataclasses.replace(chat, messages=tuple(path), branches=(*kept, *moved))


def cut_path(chat: Chat, index: int) -> Chat:
    """The chat without the place `index` and what follows it: the messages, their other
    versions and everything that followed those."""
    gone = {m.id for m in chat.messages[index:]}
    parent = parent_at(chat, index)
    gone |= {b.message.id for b in chat.branches if b.parent == parent}
    return _with(chat, chat.messages[:index], _without_descendants(chat.branches, gone))


def _without_descendants(branches: Iterable[Branch], gone: set[int | None]) -> list[Branch]:
    branches = list(branches)
    changed = True
    while changed:
        changed = False
        for b in branches:
            if b.message.id not in gone and b.parent in gone:
                gone.add(b.message.id)
                changed = True
    return [b for b in branches if b.message.id not in gone]


def path_until(chat: Chat, message_id: int) -> tuple[ChatMessage, ...]:
    """The path up to and including a message: what "branch here" copies into a new chat."""
    return chat.messages[: index_of(chat, message_id) + 1]


def _same(a: ChatMessage, b: ChatMessage) -> bool:
    return (a.role, a.content, tuple(a.tool_calls), a.tool_call_id) == (
        b.role,
        b.content,
        tuple(b.tool_calls),
        b.tool_call_id,
    )


def merge_path(chat: Chat, messages: Sequence[ChatMessage]) -> Chat:
    """The chat with `messages` as its path (an API request's conversation and reply).

    The messages the saved path already has, from the start, stay as they are (ids, times,
    files, versions); a reply that grew (continue) keeps its place; where the two differ,
    the saved rest becomes another version and the request's messages follow as the new
    path. Nothing saved is dropped."""
    old, new = chat.messages, list(messages)
    i = 0
    while i < len(old) and i < len(new) and _same(old[i], new[i]):
        i += 1
    grew = i == len(old) - 1 == len(new) - 1 and old[i].role == new[i].role == "assistant"
    if grew and new[i].content.startswith(old[i].content):  # the reply grew: one message still
        grown = dataclasses.replace(old[i], content=new[i].content, model=new[i].model or old[i].model)
        return _with(chat, [*old[:i], grown])
    if i == len(old) and i == len(new):
        return chat
    moved = _off_path(old[i:], parent_at(chat, i))
    fresh = [dataclasses.replace(m, id=None, time=None) for m in new[i:]]
    return _with(chat, [*old[:i], *fresh], [*chat.branches, *moved])
