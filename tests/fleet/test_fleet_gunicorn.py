"""The web tier on several processes: gunicorn's gevent workers in front of two upstreams serve
100 concurrent chats, and workers appending to the same chat never corrupt it or lose a turn."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from fleet_support import UiSocket, children, new_ui_chat, process_serving, sse_events, wait_until
from servers import PROJECT_ROOT, free_port, make_user_data

GUNICORN = Path(sys.executable).with_name("gunicorn")
# The command of docs/deployment.md for a front end with several workers.
FLEET_COMMAND = "gunicorn -k gevent -w 3 -b 127.0.0.1:{port} 'modules.app:create_app()'"
DOC = (PROJECT_ROOT / "docs" / "deployment.md").read_text()

pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed here")


@pytest.fixture(scope="module")
def tier(fleet, tmp_path_factory):
    a, b = fleet.upstream(), fleet.upstream()
    folder = tmp_path_factory.mktemp("gunicorn")
    user_data = make_user_data(folder / "user_data")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENEDAI_")}
    env["HEARTH_ARGS"] = (
        f"--api --no-local-model --model tiny --user-data-dir {user_data} "
        f"--upstream a={a.api_base} --upstream b={b.api_base}"
    )
    access = folder / "access.log"
    command = [
        str(GUNICORN),
        *shlex.split(FLEET_COMMAND.format(port=port))[1:],
        "--access-logfile",
        str(access),
        "--access-logformat",
        "%(p)s %(m)s %(U)s %(s)s",
    ]
    log_path = folder / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            return requests.get(base + "/health", timeout=2).ok
        except requests.RequestException:
            return False

    assert wait_until(ready, timeout=90, step=0.2), log_path.read_text()
    yield base, user_data, access, (a, b), process.pid
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def workers_in(access: Path, path: str) -> set[str]:
    pattern = re.compile(rf"^<?(\d+)>? \w+ {re.escape(path)} ")
    return {m.group(1) for line in access.read_text().splitlines() if (m := pattern.match(line))}


def test_the_documented_command_is_the_tested_one():
    assert FLEET_COMMAND.format(port=5000) in DOC


def test_three_workers_serve_100_concurrent_chats(tier):
    base, _, access, upstreams, _ = tier

    def chat(i: int) -> str:
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": f"Chat number {i}"}],
            "max_tokens": 12,
            "stream": i % 2 == 0,
        }
        response = requests.post(base + "/v1/chat/completions", json=body, stream=body["stream"], timeout=120)
        assert response.status_code == 200, response.text
        if not body["stream"]:
            return response.json()["choices"][0]["finish_reason"]
        finish = [
            c["finish_reason"] for e in sse_events(response) for c in e["choices"] if c["finish_reason"]
        ]
        return finish[-1]

    # The kernel hands connections to whichever worker accepts first: one burst may leave a
    # worker out. Bursts of 100 go on (three at most) until every worker has served some.
    bursts = 0
    for bursts in range(1, 4):  # noqa: B007 - counted for the assertion below
        with ThreadPoolExecutor(100) as pool:
            finishes = list(pool.map(chat, range(100)))
        assert len(finishes) == 100 and set(finishes) <= {"stop", "length"}
        if wait_until(lambda: len(workers_in(access, "/v1/chat/completions")) == 3, timeout=5):
            break
    assert len(workers_in(access, "/v1/chat/completions")) == 3
    served = [generations(upstream) for upstream in upstreams]
    assert all(count > 0 for count in served) and sum(served) >= 100 * bursts, served


def generations(upstream) -> float:
    text = requests.get(upstream.api_base + "/metrics", timeout=10).text
    return sum(
        float(v) for v in re.findall(r'^hearth_generations_total\{[^}]*model="tiny"[^}]*\} (\S+)', text, re.M)
    )


def test_workers_appending_to_one_chat_never_corrupt_it(tier):
    """UI sockets on several workers send turns into the same chat at once, while a reader
    keeps parsing the file: every turn and every reply is there, once, and the file always
    reads as whole JSON."""
    base, user_data, _, _, master = tier
    workers = children(master)
    assert len(workers) == 3
    # Sockets on at least two workers: open them until two workers hold some (an idle
    # worker may win several accepts in a row).
    opened: dict[int, list[UiSocket]] = {}
    for _ in range(60):
        socket = UiSocket(base)
        opened.setdefault(process_serving(socket.local_port, workers), []).append(socket)
        if len(set(opened) - {None}) >= 2:
            break
        time.sleep(0.02)
    assert len(set(opened) - {None}) >= 2, opened
    chosen = [s for pid, held in opened.items() if pid is not None for s in held[:3]]
    for socket in [s for held in opened.values() for s in held if s not in chosen]:
        socket.close()
    chat = new_ui_chat(base)
    path = user_data / "logs" / "instruct" / f"{chat['id']}.json"
    stop, torn = threading.Event(), []

    def read_while_writing() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_text())
            except FileNotFoundError:
                pass
            except ValueError as error:
                torn.append(str(error))

    sockets, turns = len(chosen), 5

    def write_turns(s: int) -> list[str]:
        socket = chosen[s]
        try:
            for t in range(turns):
                done = socket.generate(chat, f"socket {s} turn {t}", gid=f"g{t}", max_tokens=4)
                assert done["type"] == "done" and done["saved"], done
        finally:
            socket.close()
        return [f"socket {s} turn {t}" for t in range(turns)]

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    try:
        with ThreadPoolExecutor(sockets) as pool:
            sent = [text for texts in pool.map(write_turns, range(sockets)) for text in texts]
    finally:
        stop.set()
        reader.join()
    assert torn == []
    saved = json.loads(path.read_text())["messages"]
    users = [m["content"] for m in saved if m["role"] == "user"]
    assert sorted(users) == sorted(sent)  # none lost, none twice
    assert len([m for m in saved if m["role"] == "assistant"]) == len(sent)
    for s in range(sockets):  # each socket's turns in its order
        mine = [u for u in users if u.startswith(f"socket {s} ")]
        assert mine == [f"socket {s} turn {t}" for t in range(turns)]
