"""Stored responses of the Responses API, in SQLite (`user_data/responses.sqlite3`).

A stored response keeps its response object and the input items its prompt was made of:
every item of the conversation so far (the previous responses' inputs and outputs, then
this request's input), so that one response is enough to continue from, and a deleted
earlier response never breaks a later one. `instructions` are not items: as at OpenAI,
they apply to their own response only.

Limits (settings `responses_store_days` and `responses_store_mb`): responses older than
the age limit are deleted, then the oldest until the store is under its size limit,
whenever a response is saved. Each write is one SQLite transaction, so a crash leaves the
store as it was before or after it. Several processes (gunicorn workers) may share it.

A response that was generating when its process died (status `queued` or `in_progress`,
owned by a process that is gone) is marked `failed` when the store opens.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    owner TEXT NOT NULL,             -- the process generating it (for queued / in_progress)
    response TEXT NOT NULL,          -- the response object, JSON
    items TEXT NOT NULL,             -- the input items of its prompt, JSON
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at);
"""
RUNNING = ("queued", "in_progress")


@dataclass(frozen=True)
class StoredResponse:
    response: dict
    items: list[dict]


class ResponseStore:
    def __init__(self, path: Path, *, max_age_seconds: float, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_age_seconds = max_age_seconds
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            db.executescript(SCHEMA)
        finally:
            db.close()
        self._fail_orphans()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per operation: safe from any thread, greenlet or process."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def save(self, response: dict, items: list[dict]) -> None:
        """Insert or replace a response and its items, then apply the limits."""
        body, listed = _dump(response), _dump(items)
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    response["id"],
                    response["created_at"],
                    response["status"],
                    process_identity(os.getpid()),
                    body,
                    listed,
                    len(body) + len(listed),
                ),
            )
            self._evict(db)

    def update(self, response: dict) -> bool:
        """Replace the response object of a stored response (its items stay); False if gone."""
        body = _dump(response)
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE responses SET status = ?, response = ?, size = length(items) + ? WHERE id = ?",
                (response["status"], body, len(body), response["id"]),
            )
            return cursor.rowcount > 0

    def get(self, response_id: str) -> StoredResponse | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT response, items, created_at FROM responses WHERE id = ?", (response_id,)
            ).fetchone()
        if row is None or self._expired(row[2]):
            return None
        return StoredResponse(json.loads(row[0]), json.loads(row[1]))

    def delete(self, response_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    def _expired(self, created_at: float) -> bool:
        return self.max_age_seconds > 0 and created_at < time.time() - self.max_age_seconds

    def _evict(self, db: sqlite3.Connection) -> None:
        if self.max_age_seconds > 0:
            db.execute("DELETE FROM responses WHERE created_at < ?", (time.time() - self.max_age_seconds,))
        if self.max_bytes <= 0:
            return
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()[0]
        if total <= self.max_bytes:
            return
        for response_id, size in db.execute(
            "SELECT id, size FROM responses ORDER BY created_at, rowid"
        ).fetchall():
            db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
            total -= size
            if total <= self.max_bytes:
                return

    def _fail_orphans(self) -> None:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, owner, response FROM responses WHERE status IN (?, ?)", RUNNING
            ).fetchall()
            for response_id, owner, body in rows:
                if _alive(owner):
                    continue
                response = json.loads(body)
                response["status"] = "failed"
                response["error"] = {
                    "code": "server_error",
                    "message": "The server stopped while this response was being generated.",
                }
                body = _dump(response)
                db.execute(
                    "UPDATE responses SET status = 'failed', response = ? WHERE id = ?", (body, response_id)
                )


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def process_identity(pid: int) -> str:
    """`pid:start time`: a process id alone may come back after a restart (PID 1 in a
    container), its start time does not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return f"{pid}:{fields[19]}"  # field 22 of stat: the start time, in clock ticks
    except (OSError, IndexError):
        return str(pid)


def _alive(owner: str) -> bool:
    pid = owner.split(":", 1)[0]
    return pid.isdigit() and process_identity(int(pid)) == owner
