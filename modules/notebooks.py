"""Notebooks: pages of text the model continues (the UI's Notebook, text-generation-webui's
Default/Notebook tabs). One JSON file each, in `USER_DATA_DIR/notebooks/<id>.json`:

    {"format": 1, "id", "title", "text", "before", "created", "updated"}

`before` is the text as it was before the last generation (Undo puts it back; null when
there is nothing to undo). Writes are atomic and hold the folder's lock, like chats: a crash
leaves the old file or the new one, and two writers never lose each other's change.
Limits: MAX_TEXT characters of text, MAX_TITLE of title. No eviction: notebooks are the
user's documents.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modules.chat.files import TEMP_SUFFIX, atomic_write, folder_lock
from modules.chat.history import HistoryStore
from modules.chat.names import child_path, validate_history_id
from modules.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

MAX_TEXT = 2_000_000
MAX_TITLE = 200
FORMAT = 1


@dataclass(frozen=True)
class Notebook:
    id: str
    title: str = ""
    text: str = ""
    before: str | None = None
    created: float = 0.0
    updated: float = 0.0

    @property
    def display_title(self) -> str:
        if self.title:
            return self.title
        first = " ".join(self.text[:200].split())
        return (first[:59] + "…" if len(first) > 60 else first) or "Untitled"

    def to_json(self) -> dict:
        return {"format": FORMAT, **dataclasses.asdict(self)}


def checked_text(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"A notebook holds at most {MAX_TEXT:,} characters.", param="text")
    return text


class NotebookStore:
    def __init__(self, *, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def path(self, notebook_id: str) -> Path:
        validate_history_id(notebook_id, param="notebook")
        return child_path(self.root, f"{notebook_id}.json")

    def list(self) -> list[Notebook]:
        """Every notebook, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.glob("*.json"):
            if path.name.startswith(".") or path.name.endswith(TEMP_SUFFIX):
                continue
            try:
                found.append(self._read(path))
            except InvalidRequest as e:
                log.warning("Skipping notebook %s: %s", path, e.message)
        return sorted(found, key=lambda n: (n.updated, n.id), reverse=True)

    def load(self, notebook_id: str) -> Notebook:
        path = self.path(notebook_id)
        if not path.is_file():
            raise NotFound(f"The notebook '{notebook_id}' does not exist.", param="notebook")
        return self._read(path)

    def new(self, *, title: str = "", text: str = "") -> Notebook:
        now = time.time()
        notebook = Notebook(HistoryStore.new_id(), _title(title), checked_text(text), None, now, now)
        with self._locked():
            return self._write(notebook)

    def update(self, notebook_id: str, change: Callable[[Notebook], Notebook]) -> Notebook:
        """Load, change and save one notebook, with no other change in between."""
        with self._locked():
            changed = change(self.load(notebook_id))
            checked_text(changed.text)
            return self._write(dataclasses.replace(changed, title=_title(changed.title), updated=time.time()))

    def delete(self, notebook_id: str) -> None:
        path = self.path(notebook_id)
        with self._locked():
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFound(f"The notebook '{notebook_id}' does not exist.", param="notebook") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, folder_lock(self.root):
            yield

    def _write(self, notebook: Notebook) -> Notebook:
        atomic_write(self.path(notebook.id), json.dumps(notebook.to_json(), ensure_ascii=False).encode())
        return notebook

    @staticmethod
    def _read(path: Path) -> Notebook:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise InvalidRequest(f"The notebook {path.name} cannot be read: {e}") from e
        if not isinstance(data, dict):
            raise InvalidRequest(f"The notebook {path.name} is not a JSON object.")
        mtime = path.stat().st_mtime
        before = data.get("before")
        return Notebook(
            id=path.stem,
            title=_title(str(data.get("title") or "")),
            text=str(data.get("text") or ""),
            before=before if isinstance(before, str) else None,
            created=float(data.get("created") or mtime),
            updated=float(data.get("updated") or mtime),
        )


def _title(title: str) -> str:
    return " ".join(title.split())[:MAX_TITLE]
