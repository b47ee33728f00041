"""LocalDocs for one app: collections, incremental index runs with progress, and search.

An index run is driven by a consumer thread (a greenlet under gevent) that hands the work,
batch by batch, to the embedding thread (`Embedder.run`): scanning, reading, chunking,
embedding and writing all happen there, never on gevent's loop, and searches from chats
slip in between batches. Progress lives in `IndexRun`, which the UI polls and the API
returns.

Incremental: a file whose size and modification time are unchanged is skipped without
being read; one whose bytes hash the same (sha256) is only touched; new and changed files
are chunked and embedded again; files gone from the folders are dropped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from modules.chat.names import validate_name
from modules.errors import HearthError, InvalidRequest, NotFound

from .embedding import Embed, Embedder
from .reading import Chunk, UnreadableFile, is_document, read_chunks
from .store import Collection, KnownFile, NewChunk, Store

log = logging.getLogger(__name__)

BATCH_FILES = 16
MAX_FOLDERS = 32
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})


class Conflict(HearthError):
    status = 409
    type = "invalid_request_error"


@dataclass(frozen=True)
class Options:
    chunk_size: int = 800
    chunk_overlap: int = 100
    max_file_bytes: int = 20 * 1024 * 1024


@dataclass
class IndexRun:
    """The progress of one collection's index run (read by any thread)."""

    state: str = "scanning"  # scanning | indexing | done | failed | cancelled
    files_total: int = 0  # new or changed files to read
    files_done: int = 0
    files_indexed: int = 0  # read, chunked and embedded
    files_unchanged: int = 0  # same bytes, or same size and time
    files_failed: int = 0
    files_removed: int = 0
    chunks_added: int = 0
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    error: str | None = None
    cancelled: bool = field(default=False, repr=False)
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        return self.state in ("scanning", "indexing")

    def wait(self, timeout: float | None = None) -> bool:
        return self._ended.wait(timeout)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        out["progress"] = (
            round(self.files_done / self.files_total, 4)
            if self.files_total
            else (0.0 if self.running else 1.0)
        )
        return out

    def end(self, state: str, error: str | None = None) -> None:
        self.state, self.error, self.finished_at = state, error, time.time()
        self._ended.set()


@dataclass(frozen=True)
class Hit:
    collection: str
    path: str
    location: str
    text: str
    score: float


@dataclass(frozen=True)
class _Planned:
    path: str
    size: int
    mtime_ns: int
    known: KnownFile | None


class LocalDocs:
    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        options: Options,
        private_dirs: list[Path],
        spawn: Callable[[Callable[[], None], str], None] | None = None,
        roots: list[Path] | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.options = options
        self.private_dirs = [p.resolve() for p in private_dirs]  # never indexed (user_data)
        # The only folders collections may hold (and their subfolders); None: any folder.
        self.roots = None if roots is None else [p.expanduser().resolve() for p in roots]
        self._spawn = spawn or _spawn
        self._runs: dict[str, IndexRun] = {}
        self._matrices: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # id -> (version, ids, M)
        self._warned: set[str] = set()

    # --- Collections ---------------------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        found = self.store.get(name)
        if found is None:
            names = [c.name for c in self.store.collections()]
            raise NotFound(
                f"There is no LocalDocs collection {name!r}. Collections: {', '.join(names) or 'none yet'}.",
                param="localdocs",
                code="collection_not_found",
            )
        return found

    def describe(self, collection: Collection) -> dict:
        run = self._runs.get(collection.name)
        model = self.embedder.model_name
        return {
            "name": collection.name,
            "folders": list(collection.folders),
            "files": collection.files,
            "chunks": collection.chunks,
            "failed_files": collection.failed_files,
            "embedding_model": collection.embedding_model or None,
            "indexed_at": collection.indexed_at,
            "needs_index": collection.indexed_at is None
            or (bool(collection.embedding_model) and collection.embedding_model != model),
            "index": run.to_json() if run else None,
        }

    def list(self) -> list[dict]:
        return [self.describe(c) for c in self.store.collections()]

    def create(self, name: str, folders: list[str]) -> Collection:
        validate_name(name, what="collection", param="name")
        resolved = [self.check_folder(f) for f in folders]
        if len(resolved) > MAX_FOLDERS:
            raise InvalidRequest(f"A collection has at most {MAX_FOLDERS} folders.", param="folders")
        if self.store.get(name) is not None:
            raise Conflict(
                f"A LocalDocs collection named {name!r} already exists.",
                param="name",
                code="collection_exists",
            )
        self.store.create(name, dict.fromkeys(resolved))
        log.info("LocalDocs: created the collection %s (%s)", name, ", ".join(resolved))
        return self.collection(name)

    def add_folder(self, name: str, folder: str) -> Collection:
        collection = self.collection(name)
        resolved = self.check_folder(folder)
        if resolved not in collection.folders and len(collection.folders) >= MAX_FOLDERS:
            raise InvalidRequest(f"A collection has at most {MAX_FOLDERS} folders.", param="folder")
        self.store.add_folder(collection.id, resolved)
        return self.collection(name)

    def remove_folder(self, name: str, folder: str) -> Collection:
        collection = self.collection(name)
        if not self.store.remove_folder(collection.id, folder):
            raise NotFound(f"The collection {name!r} has no folder {folder!r}.", param="folder")
        return self.collection(name)

    def delete(self, name: str) -> None:
        collection = self.collection(name)
        run = self._runs.pop(name, None)
        if run is not None:
            run.cancelled = True
        self.store.delete(collection.id)
        self._matrices.pop(collection.id, None)
        log.info("LocalDocs: deleted the collection %s", name)

    def check_folder(self, folder: object) -> str:
        """An existing directory as a resolved absolute path, outside Hearth's own user_data."""
        if not isinstance(folder, str) or not folder.strip() or "\0" in folder:
            raise InvalidRequest("A folder must be a path.", param="folders")
        path = Path(folder).expanduser()
        if not path.is_absolute():
            raise InvalidRequest(f"{folder!r} is not an absolute path.", param="folders")
        try:
            path = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise InvalidRequest(f"The folder {folder!r} does not exist.", param="folders") from None
        if not path.is_dir():
            raise InvalidRequest(f"{folder!r} is not a folder.", param="folders")
        for private in self.private_dirs:
            if path == private or private in path.parents:
                raise InvalidRequest(
                    f"{folder!r} is inside Hearth's user_data folder ({private}), which holds chats, "
                    "keys and settings: it cannot be a LocalDocs folder.",
                    param="folders",
                )
        root = self.root_of(path)
        if root is None:
            listed = ", ".join(str(r) for r in self.roots or []) or "none"
            raise InvalidRequest(
                f"{folder!r} is outside the folders LocalDocs may read ({listed}). To allow it, add "
                "its folder to localdocs-folder_roots in settings.yaml.",
                param="folders",
                code="folder_not_allowed",
            )
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            raise InvalidRequest(
                f"{folder!r} is a hidden folder (or inside one): hidden folders hold settings and "
                "keys (.ssh, .config) and are never indexed.",
                param="folders",
                code="folder_not_allowed",
            )
        return str(path)

    def root_of(self, path: Path) -> Path | None:
        """The folder root `path` (resolved) lies in; `/` when any folder is allowed."""
        if self.roots is None:
            return Path(path.anchor)
        return next((r for r in self.roots if path == r or r in path.parents), None)

    # --- Index runs ----------------------------------------------------------------------------

    def run(self, name: str) -> IndexRun | None:
        return self._runs.get(name)

    def start_index(self, name: str) -> IndexRun:
        """Start indexing a collection, or return the run already going."""
        collection = self.collection(name)
        current = self._runs.get(name)
        if current is not None and current.running:
            return current
        run = self._runs[name] = IndexRun()
        self._spawn(lambda: self._index(collection, run), f"localdocs-index-{collection.id}")
        return run

    def _index(self, collection: Collection, run: IndexRun) -> None:
        started = time.monotonic()
        try:
            planned, removed, unchanged = self.embedder.run(lambda embed: self._plan(collection, embed))
            run.files_total, run.files_unchanged = len(planned), unchanged
            if removed and not run.cancelled:
                self.store.forget(collection.id, [f.id for f in removed])
                run.files_removed = len(removed)
            run.state = "indexing"
            for start in range(0, len(planned), BATCH_FILES):
                if run.cancelled:
                    break
                batch = planned[start : start + BATCH_FILES]
                counts = self.embedder.run(
                    lambda embed, batch=batch: self._index_batch(collection, batch, embed)
                )
                run.files_indexed += counts[0]
                run.files_unchanged += counts[1]
                run.files_failed += counts[2]
                run.chunks_added += counts[3]
                run.files_done += len(batch)
            if run.cancelled:
                run.end("cancelled")
                return
            self.store.finish(collection.id)
            run.end("done")
            log.info(
                "LocalDocs: indexed %s in %.1fs: %d new or changed, %d unchanged, %d removed, "
                "%d failed, %d chunks",
                collection.name,
                time.monotonic() - started,
                run.files_indexed,
                run.files_unchanged,
                run.files_removed,
                run.files_failed,
                run.chunks_added,
            )
        except Exception as exc:
            if run.cancelled:
                run.end("cancelled")
                return
            message = exc.message if isinstance(exc, HearthError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "LocalDocs: indexing %s failed: %s",
                collection.name,
                message,
                exc_info=not isinstance(exc, HearthError),
            )
            run.end("failed", message)

    def _plan(self, collection: Collection, embed: Embed) -> tuple[list[_Planned], list[KnownFile], int]:
        """On the embedding thread: which files to read, which are gone, how many unchanged."""
        dimensions = int(embed(["dimensions"]).shape[1])
        if self.store.start_model(collection.id, self.embedder.model_name, dimensions):
            log.info("LocalDocs: %s is indexed afresh with %s", collection.name, self.embedder.model_name)
        known = self.store.known_files(collection.id)
        planned: list[_Planned] = []
        seen: set[str] = set()
        for path, stat in self._walk(collection.folders):
            if path in seen:
                continue
            seen.add(path)
            old = known.get(path)
            if old is not None and old.size == stat.st_size and old.mtime_ns == stat.st_mtime_ns:
                continue
            planned.append(_Planned(path, stat.st_size, stat.st_mtime_ns, old))
        removed = [f for p, f in known.items() if p not in seen]
        return planned, removed, len(seen) - len(planned)

    def _walk(self, folders: tuple[str, ...]) -> Iterator[tuple[str, os.stat_result]]:
        """Documents under the folders. Hidden files and folders, symlinked folders, links to
        files outside their folder, and Hearth's user_data are left out."""
        for folder in folders:
            root = Path(folder)
            if not root.is_dir():
                log.warning("LocalDocs: the folder %s is gone; its files drop out", folder)
                continue
            if self.root_of(root.resolve()) is None:
                log.warning("LocalDocs: %s is outside localdocs-folder_roots now; its files drop out", folder)
                continue
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                here = Path(dirpath)
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if not d.startswith(".") and d not in SKIPPED_DIRS and here / d not in self.private_dirs
                )
                for name in sorted(filenames):
                    path = here / name
                    if name.startswith(".") or not is_document(path):
                        continue
                    try:
                        if path.is_symlink():
                            target = path.resolve(strict=True)
                            if root not in target.parents:
                                continue  # a link that leaves the folder is not followed
                        stat = path.stat()
                    except (OSError, RuntimeError):
                        continue
                    if os.path.isfile(path):
                        yield str(path), stat

    def _index_batch(
        self, collection: Collection, batch: list[_Planned], embed: Embed
    ) -> tuple[int, int, int, int]:
        """On the embedding thread: read, chunk, embed and save a few files.
        Returns (indexed, unchanged, failed, chunks)."""
        options = self.options
        results, texts = [], []
        unchanged = failed = 0
        for item in batch:
            error, chunks, digest = None, [], ""
            try:
                if item.size > options.max_file_bytes:
                    raise UnreadableFile(f"larger than {options.max_file_bytes // (1024 * 1024)} MB")
                with open(item.path, "rb") as f:
                    data = f.read(options.max_file_bytes + 1)
                digest = hashlib.sha256(data).hexdigest()
                if item.known is not None and item.known.sha256 == digest:
                    self.store.touch(item.known.id, item.size, item.mtime_ns)
                    unchanged += 1
                    continue
                chunks = read_chunks(Path(item.path), data, options.chunk_size, options.chunk_overlap)
            except (UnreadableFile, OSError) as exc:
                error = str(exc) or type(exc).__name__
                failed += 1
            results.append((item, digest, error, chunks))
            texts.extend(_embedding_text(item.path, c) for c in chunks)
        vectors = embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
        rows, offset = [], 0
        for item, digest, error, chunks in results:
            mine = vectors[offset : offset + len(chunks)] if chunks else None
            offset += len(chunks)
            new = [NewChunk(i, c.location, c.text) for i, c in enumerate(chunks)]
            rows.append((item.path, item.size, item.mtime_ns, digest, error, new, mine))
        if rows:
            self.store.save_files(collection.id, rows)
        return len(results) - failed, unchanged, failed, len(texts)

    # --- Search ----------------------------------------------------------------------------------

    def search(self, names: list[str], query: str, top_k: int, min_score: float = 0.0) -> list[Hit]:
        """The `top_k` chunks of the named collections most like `query`, best first."""
        collections = [self.collection(name) for name in names]
        if not query.strip() or top_k <= 0 or not collections:
            return []
        return self.embedder.run(lambda embed: self._search(collections, query, top_k, min_score, embed))

    def _search(
        self, collections: list[Collection], query: str, top_k: int, min_score: float, embed: Embed
    ) -> list[Hit]:
        vector = embed([query])[0]
        model = self.embedder.model_name
        candidates: list[tuple[float, int, str]] = []
        for collection in collections:
            if collection.embedding_model and collection.embedding_model != model:
                if collection.name not in self._warned:
                    self._warned.add(collection.name)
                    log.warning(
                        "LocalDocs: %s was indexed with %s, not %s: index it again",
                        collection.name,
                        collection.embedding_model,
                        model,
                    )
                continue
            ids, matrix = self._matrix(collection, vector.shape[0])
            if not len(ids):
                continue
            scores = matrix @ vector
            best = np.argpartition(-scores, min(top_k, len(ids)) - 1)[:top_k]
            candidates += [(float(scores[i]), int(ids[i]), collection.name) for i in best]
        candidates = sorted((c for c in candidates if c[0] >= min_score), reverse=True)[:top_k]
        details = self.store.chunk_details([c[1] for c in candidates])
        return [
            Hit(name, *details[cid][:2], details[cid][2], round(score, 4))
            for score, cid, name in candidates
            if cid in details
        ]

    def _matrix(self, collection: Collection, dimensions: int) -> tuple[np.ndarray, np.ndarray]:
        """The collection's embeddings, cached until an index run changes them."""
        version = self.store.version(collection.id)
        cached = self._matrices.get(collection.id)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        ids, matrix = self.store.matrix(collection.id, dimensions)
        if matrix.shape[1] != dimensions:
            return ids[:0], matrix[:0]
        self._matrices[collection.id] = (version, ids, matrix)
        return ids, matrix

    def close(self) -> None:
        for run in self._runs.values():
            run.cancelled = True
        self.embedder.close()


def _embedding_text(path: str, chunk: Chunk) -> str:
    """What is embedded: the file's name helps questions that name it ("the meeting notes")."""
    return f"{Path(path).name}\n{chunk.text}"


def _spawn(target: Callable[[], None], name: str) -> None:
    """A consumer thread: a greenlet under gevent (it waits on the mailer), a thread otherwise."""
    threading.Thread(target=target, name=name, daemon=True).start()
