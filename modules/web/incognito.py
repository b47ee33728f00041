"""Incognito chats: kept in this server's memory only, never written anywhere.

They answer the same calls as the history store (`new`, `load`, `update`, `rename`,
`delete`, `add`), so the UI's turns and edits work on them unchanged. They are gone when the
page leaves them (it deletes them), after `IDLE_SECONDS` unused, beyond the `MAX_CHATS`
most recent, and when the server stops: the page says so.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from modules.chat.chat_log import Chat, numbered
from modules.chat.history import HistoryStore
from modules.chat.messages import ChatMessage
from modules.chat.names import validate_history_id
from modules.errors import NotFound, PayloadTooLarge

MAX_CHATS = 64
IDLE_SECONDS = 24 * 3600
MAX_FILE_BYTES = 256 * 1024 * 1024  # of all incognito chats' images together


class IncognitoChats:
    def __init__(self, *, max_chats: int = MAX_CHATS, idle_seconds: float = IDLE_SECONDS) -> None:
        self.max_chats = max_chats
        self.idle_seconds = idle_seconds
        self._chats: OrderedDict[str, tuple[Chat, float]] = OrderedDict()
        self._files: dict[str, dict[str, bytes]] = {}  # chat id -> its files (images)
        self._lock = threading.RLock()

    def new(self, mode: str, character: str | None = None, *, greeting: str = "", title: str = "") -> Chat:
        now = time.time()
        messages = (ChatMessage("assistant", greeting, time=now),) if greeting.strip() else ()
        chat = Chat("incognito-" + HistoryStore.new_id(), mode, character if mode != "instruct" else None)
        chat = dataclasses.replace(chat, messages=messages, title=title, created=now, updated=now)
        return self.save(chat)

    def save(self, chat: Chat) -> Chat:
        chat = numbered(chat)
        with self._lock:
            self._forget_old()
            self._chats[chat.id] = (chat, time.monotonic())
            self._chats.move_to_end(chat.id)
            while len(self._chats) > self.max_chats:
                gone, _ = self._chats.popitem(last=False)
                self._files.pop(gone, None)
        return chat

    def add(self, chat: Chat) -> Chat:
        return self.save(dataclasses.replace(chat, id="incognito-" + HistoryStore.new_id()))

    def load(self, mode: str, character: str | None, history_id: str) -> Chat:
        validate_history_id(history_id)
        with self._lock:
            self._forget_old()
            found = self._chats.get(history_id)
        if found is None:
            raise NotFound(
                "This incognito chat is gone: it lives only in the server's memory, and the server "
                "restarted or forgot it. Its text is still on your page until you leave it.",
                param="history_id",
            )
        return found[0]

    def update(
        self, mode: str, character: str | None, history_id: str, change: Callable[[Chat], Chat]
    ) -> Chat:
        with self._lock:  # reentrant: one change at a time, from loading to saving
            return self.save(change(self.load(mode, character, history_id)))

    def rename(self, mode: str, character: str | None, history_id: str, title: str) -> Chat:
        title = " ".join(title.split())[:200]
        return self.update(mode, character, history_id, lambda c: dataclasses.replace(c, title=title))

    def delete(self, mode: str, character: str | None, history_id: str) -> None:
        self.load(mode, character, history_id)
        with self._lock:
            self._chats.pop(history_id, None)
            self._files.pop(history_id, None)

    def write_file(self, mode: str, character: str | None, history_id: str, name: str, data: bytes) -> None:
        self.load(mode, character, history_id)
        with self._lock:
            held = sum(len(d) for files in self._files.values() for d in files.values())
            if held + len(data) > MAX_FILE_BYTES:
                raise PayloadTooLarge(
                    f"Incognito chats keep at most {MAX_FILE_BYTES // 2**20} MB of images in memory: "
                    "delete an incognito chat, or use a saved one."
                )
            self._files.setdefault(history_id, {})[name] = data

    def read_file(self, mode: str, character: str | None, history_id: str, name: str) -> bytes:
        self.load(mode, character, history_id)
        with self._lock:
            data = self._files.get(history_id, {}).get(name)
        if data is None:
            raise NotFound(f"The chat has no file {name[:80]!r}.", param="file")
        return data

    def copy_files(self, mode: str, character: str | None, source: str, target: str) -> None:
        with self._lock:
            if source in self._files:
                self._files[target] = dict(self._files[source])

    def _forget_old(self) -> None:
        limit = time.monotonic() - self.idle_seconds
        for key in [k for k, (_, used) in self._chats.items() if used < limit]:
            del self._chats[key]
            self._files.pop(key, None)
