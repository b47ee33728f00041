"""The history store under two writers: processes appending turns to the same chat (two
servers or workers sharing user_data, as the UI and the API may) never lose a turn, and a
writer killed (SIGKILL) at any point of a write leaves the old version or the new, never a mix,
and never a lock nobody can take again."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from modules.chat import chat_log
from modules.chat.history import HistoryStore

REPO = Path(__file__).resolve().parents[2]

APPENDER = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from modules.chat import chat_log
from modules.chat.history import HistoryStore
store = HistoryStore(root=Path({root!r}))
name, turns, size = {name!r}, {turns!r}, {size!r}
print("ready", flush=True)
sys.stdin.readline()  # both start together
for i in range(turns):
    store.update("chat", "Ada", {id!r},
                 lambda chat: chat_log.append_exchange(chat, f"{{name}} {{i}}", "r" * size))
print("done", flush=True)
"""


def appender(root: Path, chat_id: str, name: str, turns: int, size: int = 200) -> subprocess.Popen:
    script = APPENDER.format(repo=str(REPO), root=str(root), id=chat_id, name=name, turns=turns, size=size)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def start(*procs: subprocess.Popen) -> None:
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()


def users(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))  # whole JSON, or this raises
    said = [m["content"] for m in data["messages"] if m["role"] == "user"]
    # the file's other views were written with the messages, in the same write
    assert [pair[0] for pair in data["internal"] if pair[0] in said] == said
    assert len(data["internal"]) == len(data["visible"])
    return said


def in_order(said: list[str], name: str) -> list[int]:
    numbers = [int(text.split()[1]) for text in said if text.startswith(name + " ")]
    assert numbers == list(range(len(numbers))), numbers  # none lost in between, none twice
    return numbers


def test_two_processes_appending_to_one_chat_lose_no_turn(tmp_path):
    store = HistoryStore(root=tmp_path / "logs")
    chat = store.new("chat", "Ada", greeting="Hello.")
    turns = 100
    a, b = (appender(tmp_path / "logs", chat.id, name, turns) for name in ("ui", "api"))
    start(a, b)
    for proc in (a, b):
        assert proc.stdout.readline().strip() == "done"
        assert proc.wait(timeout=60) == 0
    said = users(store.path("chat", "Ada", chat.id))
    assert len(said) == 2 * turns
    assert len(in_order(said, "ui")) == turns and len(in_order(said, "api")) == turns
    # and they did interleave: the test exercised the race, not two runs one after the other
    first_api = said.index("api 0")
    assert any(text.startswith("ui ") for text in said[first_api:])


def test_a_writer_killed_anywhere_leaves_a_whole_chat_and_a_free_lock(tmp_path):
    """A writer of big turns is killed at random moments while another keeps appending; after
    each kill the file is one version or the next, and the other writer goes on."""
    store = HistoryStore(root=tmp_path / "logs")
    chat = store.new("chat", "Ada")
    path = store.path("chat", "Ada", chat.id)
    steady = appender(tmp_path / "logs", chat.id, "steady", turns=10_000, size=100)
    start(steady)
    rng = random.Random(20260101)
    kills = 0
    try:
        for _ in range(12):
            victim = appender(tmp_path / "logs", chat.id, f"victim{kills}", turns=10_000, size=300_000)
            start(victim)
            time.sleep(rng.uniform(0.01, 0.4))
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            kills += 1
            said = users(path)  # a whole file: the old version or the new one
            in_order(said, "steady")
            for k in range(kills):
                in_order(said, f"victim{k}")
            before = len(said)
            deadline = time.monotonic() + 10  # the steady writer was not left waiting on a dead lock
            while len(users(path)) == before:
                assert time.monotonic() < deadline, "the lock was not released by the killed writer"
                time.sleep(0.01)
    finally:
        steady.kill()
        steady.wait(timeout=10)
    assert [p.name for p in path.parent.glob("*.json")] == [path.name]
    store.update("chat", "Ada", chat.id, lambda c: chat_log.append_exchange(c, "after", "all that"))
    assert users(path)[-1] == "after"
