"""Helpers for the fleet tests: reading the front's metrics and health, streaming."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator

import requests
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerProcess


def samples(server: ServerProcess, prefix: str = "hearth_upstream_") -> dict[tuple, float]:
    """Every sample of the front's /metrics whose name starts with `prefix`."""
    text = requests.get(server.api_base + "/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def upstream_requests(server: ServerProcess) -> dict[str, float]:
    """Requests each upstream ended (any outcome), by upstream name."""
    totals: dict[str, float] = {}
    for (name, labels), value in samples(server).items():
        if name == "hearth_upstream_requests_total":
            upstream = dict(labels)["upstream"]
            totals[upstream] = totals.get(upstream, 0) + value
    return totals


def wait_until(check: Callable[[], bool], timeout: float = 15, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def upstream_states(server: ServerProcess) -> dict[str, str]:
    return requests.get(server.api_base + "/health", timeout=10).json().get("upstreams", {})


def sse_events(response: requests.Response) -> Iterator[dict]:
    """The JSON events of a streamed response (the `[DONE]` line ends it)."""
    for line in response.iter_lines():
        match = re.match(rb"^data: (.*)$", line or b"")
        if not match:
            continue
        if match.group(1) == b"[DONE]":
            return
        yield json.loads(match.group(1))


class UiSocket:
    """The browser UI's chat websocket, as the page uses it."""

    def __init__(self, base: str) -> None:
        from simple_websocket import Client

        self.ws = Client.connect(base.replace("http://", "ws://") + "/ui/ws")

    @property
    def local_port(self) -> int:
        return self.ws.sock.getsockname()[1]

    def generate(self, chat: dict, text: str, gid: str, max_tokens: int = 8) -> dict:
        """Send a turn; the `done` (or `error`) message that ends it."""
        self.ws.send(
            json.dumps(
                {
                    "type": "generate",
                    "id": gid,
                    "action": "send",
                    "text": text,
                    "chat": {"mode": chat["mode"], "character": chat["character"], "id": chat["id"]},
                    "sampling": {"temperature": 0, "max_tokens": max_tokens},
                }
            )
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raw = self.ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            message = json.loads(raw) if raw else {}
            if message.get("type") in ("done", "error"):
                return message
        raise AssertionError("no done message in time")

    def close(self) -> None:
        self.ws.close()


def new_ui_chat(base: str, mode: str = "instruct", character: str | None = None) -> dict:
    response = requests.post(
        base + "/ui/api/chats",
        json={"mode": mode, "character": character},
        headers={"Origin": base},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def process_serving(client_port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the server end of the loopback connection from `client_port`
    (read from /proc: the socket's inode, then the process with that inode open)."""
    import pathlib

    inodes = set()
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == client_port and fields[3] == "01":  # 01: ESTABLISHED
            inodes.add(fields[9])
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if any(link == f"socket:[{inode}]" for link in links for inode in inodes):
            return pid
    return None


def children(pid: int) -> list[int]:
    import pathlib

    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found
