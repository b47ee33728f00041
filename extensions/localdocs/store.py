"""The LocalDocs database: collections, their folders, files and chunks, in one SQLite file.

`user_data/localdocs.sqlite3`, in WAL mode so the UI can list collections while an index
run writes. Each collection has a `version` that every change to its chunks bumps: search
caches a collection's matrix of embeddings by (id, version). Embeddings are float32 blobs of
unit length, so cosine similarity is a dot product.

Connections are short-lived and belong to the thread that opened them (`connect()` in a
`with` block per piece of work).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    embedding_model TEXT NOT NULL DEFAULT '',
    dimensions INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS folders (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    PRIMARY KEY (collection_id, path)
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    error TEXT,
    indexed_at REAL NOT NULL,
    UNIQUE (collection_id, path)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    location TEXT NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file_id);
"""


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    folders: tuple[str, ...]
    embedding_model: str
    indexed_at: float | None
    version: int
    files: int
    chunks: int
    failed_files: int


@dataclass(frozen=True)
class KnownFile:
    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class NewChunk:
    position: int
    location: str
    text: str


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    # --- Collections ---------------------------------------------------------------------------

    def collections(self, name: str | None = None) -> list[Collection]:
        where, args = ("WHERE c.name = ?", (name,)) if name is not None else ("", ())
        with self.connect() as db:
            rows = db.execute(
                f"""
                SELECT c.id, c.name, c.embedding_model, c.indexed_at, c.version,
                       (SELECT COUNT(*) FROM files f WHERE f.collection_id = c.id AND f.error IS NULL),
                       (SELECT COUNT(*) FROM chunks k JOIN files f ON k.file_id = f.id
                         WHERE f.collection_id = c.id),
                       (SELECT COUNT(*) FROM files f WHERE f.collection_id = c.id AND f.error IS NOT NULL)
                FROM collections c {where} ORDER BY c.name""",
                args,
            ).fetchall()
            folders: dict[int, list[str]] = {}
            for cid, path in db.execute("SELECT collection_id, path FROM folders ORDER BY rowid"):
                folders.setdefault(cid, []).append(path)
        return [
            Collection(r[0], r[1], tuple(folders.get(r[0], ())), r[2], r[3], r[4], r[5], r[6], r[7])
            for r in rows
        ]

    def get(self, name: str) -> Collection | None:
        found = self.collections(name)
        return found[0] if found else None

    def create(self, name: str, folders: Iterable[str]) -> None:
        """Raises sqlite3.IntegrityError when the name is taken."""
        with self.connect() as db, db:
            cid = db.execute(
                "INSERT INTO collections (name, created_at) VALUES (?, ?)", (name, time.time())
            ).lastrowid
            db.executemany(
                "INSERT OR IGNORE INTO folders (collection_id, path) VALUES (?, ?)",
                [(cid, folder) for folder in folders],
            )

    def add_folder(self, collection_id: int, folder: str) -> None:
        with self.connect() as db, db:
            db.execute(
                "INSERT OR IGNORE INTO folders (collection_id, path) VALUES (?, ?)", (collection_id, folder)
            )

    def remove_folder(self, collection_id: int, folder: str) -> bool:
        with self.connect() as db, db:
            return (
                db.execute(
                    "DELETE FROM folders WHERE collection_id = ? AND path = ?", (collection_id, folder)
                ).rowcount
                > 0
            )

    def delete(self, collection_id: int) -> None:
        with self.connect() as db, db:
            db.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

    # --- Index runs (on the embedding thread) ------------------------------------------------

    def known_files(self, collection_id: int) -> dict[str, KnownFile]:
        with self.connect() as db:
            rows = db.execute(
                "SELECT id, path, size, mtime_ns, sha256 FROM files WHERE collection_id = ?", (collection_id,)
            ).fetchall()
        return {r[1]: KnownFile(*r) for r in rows}

    def start_model(self, collection_id: int, model: str, dimensions: int) -> bool:
        """Record the embedding model; a different one than before drops every file (their
        vectors cannot be compared). Returns whether it did."""
        with self.connect() as db, db:
            row = db.execute(
                "SELECT embedding_model, dimensions FROM collections WHERE id = ?", (collection_id,)
            ).fetchone()
            if row is None or (row[0] == model and row[1] == dimensions):
                return False
            db.execute("DELETE FROM files WHERE collection_id = ?", (collection_id,))
            db.execute(
                "UPDATE collections SET embedding_model = ?, dimensions = ?, "
                "version = version + 1 WHERE id = ?",
                (model, dimensions, collection_id),
            )
            return True

    def touch(self, file_id: int, size: int, mtime_ns: int) -> None:
        with self.connect() as db, db:
            db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, file_id))

    def save_files(
        self,
        collection_id: int,
        results: list[tuple[str, int, int, str, str | None, list[NewChunk], np.ndarray | None]],
    ) -> None:
        """Replace each file's chunks: (path, size, mtime_ns, sha256, error, chunks, vectors)."""
        now = time.time()
        with self.connect() as db, db:
            for path, size, mtime_ns, sha256, error, chunks, vectors in results:
                db.execute("DELETE FROM files WHERE collection_id = ? AND path = ?", (collection_id, path))
                file_id = db.execute(
                    "INSERT INTO files (collection_id, path, size, mtime_ns, sha256, error, indexed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (collection_id, path, size, mtime_ns, sha256, error, now),
                ).lastrowid
                if vectors is not None:
                    db.executemany(
                        "INSERT INTO chunks (file_id, position, location, text, embedding) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [
                            (file_id, c.position, c.location, c.text, np.asarray(v, dtype="<f4").tobytes())
                            for c, v in zip(chunks, vectors, strict=True)
                        ],
                    )
            db.execute("UPDATE collections SET version = version + 1 WHERE id = ?", (collection_id,))

    def forget(self, collection_id: int, file_ids: list[int]) -> None:
        with self.connect() as db, db:
            db.executemany(
                "DELETE FROM files WHERE id = ? AND collection_id = ?",
                [(fid, collection_id) for fid in file_ids],
            )
            db.execute("UPDATE collections SET version = version + 1 WHERE id = ?", (collection_id,))

    def finish(self, collection_id: int) -> None:
        with self.connect() as db, db:
            db.execute("UPDATE collections SET indexed_at = ? WHERE id = ?", (time.time(), collection_id))

    # --- Search ----------------------------------------------------------------------------------

    def version(self, collection_id: int) -> int | None:
        with self.connect() as db:
            row = db.execute("SELECT version FROM collections WHERE id = ?", (collection_id,)).fetchone()
        return row[0] if row else None

    def matrix(self, collection_id: int, dimensions: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, their embeddings as one float32 matrix) of a collection."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT k.id, k.embedding FROM chunks k JOIN files f ON k.file_id = f.id "
                "WHERE f.collection_id = ? ORDER BY k.id",
                (collection_id,),
            ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, dimensions), dtype=np.float32)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
        return ids, vectors

    def chunk_details(self, chunk_ids: list[int]) -> dict[int, tuple[str, str, str]]:
        """chunk id -> (file path, location, text)."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        with self.connect() as db:
            rows = db.execute(
                f"SELECT k.id, f.path, k.location, k.text FROM chunks k "
                f"JOIN files f ON k.file_id = f.id WHERE k.id IN ({marks})",
                chunk_ids,
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}
