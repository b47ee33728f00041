"""A crash in the middle of a save leaves the old chat or the new one, whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modules.chat import chat_log
from modules.chat.files import LOCK_NAME
from modules.chat.history import HistoryStore

REPO = Path(__file__).resolve().parents[2]


def test_failure_during_write_keeps_the_old_file(history, monkeypatch):
    chat = history.save(chat_log.append_exchange(history.new("instruct"), "old", "old reply"))
    path = history.path("instruct", None, chat.id)
    before = path.read_bytes()

    def crash(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", crash)  # dies after writing the temp file, before rename
    with pytest.raises(OSError):
        history.save(chat_log.append_exchange(chat, "new", "new reply"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    left = [p.name for p in path.parent.iterdir() if p.name != LOCK_NAME]  # the folder's lock stays
    assert left == [path.name]  # no temp file left


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from modules.chat import chat_log
from modules.chat.history import HistoryStore
store = HistoryStore(root=Path({root!r}))
chat = store.load("instruct", None, {id!r})
big = "x" * 2_000_000
print("ready", flush=True)
i = 0
while True:
    i += 1
    store.save(chat_log.append_exchange(chat, f"turn {{i}}", big))
"""


def test_killed_writer_leaves_a_whole_file(tmp_path):
    store = HistoryStore(root=tmp_path / "logs")
    chat = store.save(chat_log.append_exchange(store.new("instruct"), "first", "reply"))
    path = store.path("instruct", None, chat.id)
    script = WRITER.format(repo=str(REPO), root=str(tmp_path / "logs"), id=chat.id)
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
        data = json.loads(path.read_text(encoding="utf-8"))  # whole JSON, or this raises
        users = [m["content"] for m in data["messages"] if m["role"] == "user"]
        assert users[0] == "first" and all(u.startswith("turn ") for u in users[1:])
        assert len(data["internal"]) == len(users) == len(data["visible"])
        assert all(len(pair[1]) == 2_000_000 for pair in data["internal"][1:])
        loaded = store.load("instruct", None, chat.id)
        assert loaded.messages[0].content == "first"
    assert [c.id for c in store.list("instruct")] == [chat.id]  # stray temp files are ignored
