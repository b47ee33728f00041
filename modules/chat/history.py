"""Saved conversations: `<root>/chat/<character>/<id>.json` and `<root>/instruct/<id>.json`.

Ids are made by the server (or chosen by an API caller) and checked on every access, like
character names, so no request can reach outside the logs folder.

The file format (versions and branches included) is chat_file.py's. Every write is atomic
(a crash, SIGKILL included, leaves the old file or the new one), and every change holds its
folder's lock from reading to writing, across threads and processes: two servers or workers
sharing user_data that add turns to one chat never lose one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from modules.chat.chat_file import chat_from_json, chat_to_json
from modules.chat.chat_log import FORMAT, Chat, numbered
from modules.chat.files import TEMP_SUFFIX, atomic_write, folder_lock
from modules.chat.messages import MODES, ChatMessage
from modules.chat.names import child_path, validate_history_id, validate_name
from modules.chat.versions import merge_path
from modules.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatSummary:
    id: str
    mode: str
    character: str | None
    title: str
    updated: float


class HistoryStore:
    def __init__(self, *, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()  # this process's threads queue here, not on the file lock

    # --- places ----------------------------------------------------------------------------

    def folder(self, mode: str, character: str | None) -> Path:
        if mode not in MODES:
            raise InvalidRequest(f"Invalid mode {mode!r}.", param="mode")
        if mode == "instruct":
            return self.root / "instruct"
        if not character:
            raise InvalidRequest("A chat history needs a character.", param="character")
        return child_path(self.root / "chat", validate_name(character))

    def path(self, mode: str, character: str | None, history_id: str) -> Path:
        validate_history_id(history_id)
        return child_path(self.folder(mode, character), f"{history_id}.json")

    @staticmethod
    def new_id() -> str:
        return f"{datetime.now():%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"

    # --- reading ---------------------------------------------------------------------------

    def list(self, mode: str, character: str | None = None) -> list[ChatSummary]:
        """The saved chats of a mode (and character), newest first."""
        chats = [
            ChatSummary(chat.id, chat.mode, chat.character, chat.display_title, chat.updated)
            for chat in self.chats(mode, character)
        ]
        return sorted(chats, key=lambda c: (c.updated, c.id), reverse=True)

    def chats(self, mode: str, character: str | None = None) -> Iterator[Chat]:
        """Every readable chat of a mode's (and character's) folder, in no order."""
        folder = self.folder(mode, character)
        if not folder.is_dir():
            return
        for path in folder.glob("*.json"):
            if path.name.startswith(".") or path.name.endswith(TEMP_SUFFIX):
                continue
            try:
                yield self._read(path, mode, character)
            except InvalidRequest as e:
                log.warning("Skipping chat history %s: %s", path, e.message)

    def places(self) -> Iterator[tuple[str, str | None]]:
        """Every folder that holds chats: ("instruct", None), then ("chat", key) for each
        character folder (chat and chat-instruct chats share it)."""
        yield "instruct", None
        folder = self.root / "chat"
        if folder.is_dir():
            for sub in sorted(folder.iterdir()):
                try:
                    if sub.is_dir():
                        yield "chat", validate_name(sub.name)
                except InvalidRequest:
                    continue

    def load(self, mode: str, character: str | None, history_id: str) -> Chat:
        path = self.path(mode, character, history_id)
        if not path.is_file():
            raise NotFound(f"The chat history '{history_id}' does not exist.", param="history_id")
        return self._read(path, mode, character)

    def exists(self, mode: str, character: str | None, history_id: str) -> bool:
        return self.path(mode, character, history_id).is_file()

    # --- writing ---------------------------------------------------------------------------

    def new(
        self,
        mode: str,
        character: str | None = None,
        *,
        greeting: str = "",
        title: str = "",
    ) -> Chat:
        """A new, saved chat (opening with the greeting, if any)."""
        now = time.time()
        messages = (ChatMessage("assistant", greeting, time=now),) if greeting.strip() else ()
        chat = Chat(
            self.new_id(),
            mode,
            character if mode != "instruct" else None,
            messages,
            title,
            now,
            now,
        )
        return self.save(chat)

    def save(self, chat: Chat) -> Chat:
        """Write `chat` atomically (a crash leaves the old file or the new one, whole)."""
        _check_format(chat)
        with self._locked(chat.mode, chat.character):
            return self._write(chat)

    def add(self, chat: Chat) -> Chat:
        """Save `chat` as a new chat of its place, under a new id (import, branch here)."""
        return self.save(dataclasses.replace(chat, id=self.new_id(), format=FORMAT))

    def update(
        self,
        mode: str,
        character: str | None,
        history_id: str,
        change: Callable[[Chat], Chat],
    ) -> Chat:
        """Load, change and save one chat, with no other change (from any process) in between."""
        with self._locked(mode, character):
            current = self.load(mode, character, history_id)
            _check_format(current)
            return self._write(change(current))

    def rename(self, mode: str, character: str | None, history_id: str, title: str) -> Chat:
        title = " ".join(title.split())[:200]
        return self.update(mode, character, history_id, lambda c: dataclasses.replace(c, title=title))

    def delete(self, mode: str, character: str | None, history_id: str) -> None:
        path = self.path(mode, character, history_id)
        try:
            with self._locked(mode, character):
                path.unlink()
                shutil.rmtree(self._files_folder(mode, character, history_id), ignore_errors=True)
        except FileNotFoundError:
            raise NotFound(f"The chat history '{history_id}' does not exist.", param="history_id") from None

    # --- a chat's files (its images: chat_images.py) ------------------------------------------

    def _files_folder(self, mode: str, character: str | None, history_id: str) -> Path:
        validate_history_id(history_id)
        return child_path(self.folder(mode, character), f"{history_id}.files")

    def write_file(self, mode: str, character: str | None, history_id: str, name: str, data: bytes) -> None:
        """Save a file with the chat (the chat must exist); the same name is the same bytes."""
        self.load(mode, character, history_id)
        folder = self._files_folder(mode, character, history_id)
        path = child_path(folder, validate_name(name, what="file"))
        if not path.is_file():
            folder.mkdir(exist_ok=True)
            atomic_write(path, data)

    def read_file(self, mode: str, character: str | None, history_id: str, name: str) -> bytes:
        folder = self._files_folder(mode, character, history_id)
        try:
            return child_path(folder, validate_name(name, what="file")).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"The chat has no file {name[:80]!r}.", param="file") from None

    def copy_files(self, mode: str, character: str | None, source: str, target: str) -> None:
        """A branch's files: those of the chat it came from."""
        folder = self._files_folder(mode, character, source)
        if folder.is_dir():
            shutil.copytree(folder, self._files_folder(mode, character, target), dirs_exist_ok=True)

    def record(
        self,
        mode: str,
        character: str | None,
        history_id: str,
        messages: Sequence[ChatMessage],
        reply: ChatMessage | None,
        *,
        greeting: str = "",
    ) -> Chat:
        """Save an API conversation under the caller's `history_id` (created if new).

        The request carries the whole conversation, so the chat shown becomes its messages
        plus the reply, opened by the greeting when the request did not start with one.
        An existing chat keeps its title, creation time and versions: the messages it
        already had keep their ids and times, and where the request differs (an edited or
        regenerated message), the saved rest stays as another version (versions.merge_path).
        """
        character = character if mode != "instruct" else None
        self.path(mode, character, history_id)  # validate before anything else
        messages = list(messages)
        first = next((m for m in messages if m.role != "system"), None)
        if greeting.strip() and (first is None or first.role != "assistant"):
            lead = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
            messages.insert(lead, ChatMessage("assistant", greeting))
        if reply is not None:
            messages.append(reply)
        with self._locked(mode, character):
            now = time.time()
            try:
                old = self.load(mode, character, history_id)
            except (NotFound, InvalidRequest):
                old = Chat(history_id, mode, character, (), "", now, now)
            _check_format(old)
            return self._write(dataclasses.replace(merge_path(old, messages), mode=mode))

    # --- files -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, mode: str, character: str | None) -> Iterator[None]:
        with self._lock, folder_lock(self.folder(mode, character)):
            yield

    def _write(self, chat: Chat) -> Chat:
        path = self.path(chat.mode, chat.character, chat.id)
        now = time.time()
        chat = numbered(dataclasses.replace(chat, created=chat.created or now, updated=chat.updated or now))
        chat = dataclasses.replace(chat, format=FORMAT)
        atomic_write(path, json.dumps(chat_to_json(chat), ensure_ascii=False, indent=1).encode())
        return chat

    @staticmethod
    def _read(path: Path, mode: str, character: str | None) -> Chat:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise InvalidRequest(f"The chat history {path.name} cannot be read: {e}") from e
        try:
            return chat_from_json(
                data, id=path.stem, mode=mode, character=character, mtime=path.stat().st_mtime
            )
        except InvalidRequest as e:
            raise InvalidRequest(f"The chat history {path.name} cannot be read: {e.message}") from e


def _check_format(chat: Chat) -> None:
    if chat.format > FORMAT:
        raise InvalidRequest(
            f"This chat was saved by a newer Hearth (chat format {chat.format}; this one writes "
            f"{FORMAT}). It can be read here but not changed, so that nothing the newer "
            "version saved is lost.",
            param="history_id",
        )
