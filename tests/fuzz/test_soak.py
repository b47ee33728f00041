"""Soak: 200 concurrent clients for HEARTH_SOAK_SECONDS (default 60) against one real server,
a fifth of them opening streams and hanging up after a few events.

Asserted: no 5xx and no hang (every request answered within its timeout, every client done in
time); every refusal a 429 with a Retry-After of whole seconds; afterwards every slot free and
nothing queued; the server's resident memory grew by at most RSS_GROWTH_MIB between the end of
the warm-up and the end of the run (measured here: a few MiB; the bound leaves room for the
allocator, never for a leak of a request's worth of state per request).

With 4 slots and a queue of 64, the steady state (full queue, 429s, dropped streams
cancelled, slots reused) is reached within the first seconds; the full minute is what the
issue asked for, and memory growth shows better over it. HEARTH_SOAK_SECONDS=10 gives a quick
run while working on the server.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

CLIENTS = 200
SECONDS = float(os.environ.get("HEARTH_SOAK_SECONDS", "60"))
WARM_UP = 5.0
RSS_GROWTH_MIB = 64
REQUEST_TIMEOUT = (10, 60)  # connect, read: longer than this is a hang


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def client(number: int, base: str, deadline: float, tally: Tally) -> None:
    rng = random.Random(number)
    dropper = number % 5 == 0  # a fifth of the clients hang up on their streams
    session = requests.Session()
    url = base + "/v1/chat/completions"
    while time.monotonic() < deadline:
        stream = dropper or rng.random() < 0.3
        body = {
            "messages": [{"role": "user", "content": f"Tell me about the number {rng.randint(1, 10**6)}."}],
            "max_tokens": 200 if dropper else rng.choice([4, 8, 16]),
            "stream": stream,
        }
        try:
            response = session.post(url, json=body, stream=stream, timeout=REQUEST_TIMEOUT)
            status = response.status_code
            tally.count(status)
            if status == 429:
                retry = response.headers.get("Retry-After", "")
                if not retry.isdigit() or int(retry) < 1:
                    tally.problem(f"429 without a usable Retry-After: {retry!r}")
                response.close()
                time.sleep(min(int(retry or 1), 2) * rng.uniform(0.5, 1.0))
                continue
            if status >= 500 or status != 200:
                tally.problem(f"{status}: {response.text[:200]}")
                continue
            if dropper:
                for i, _ in enumerate(response.iter_lines()):
                    if i >= 3:
                        break
                response.close()  # hang up mid-stream
                session.close()
                session = requests.Session()
                with tally.lock:
                    tally.dropped += 1
            else:
                response.content  # noqa: B018 - read it all
        except requests.RequestException as exc:
            tally.problem(f"{type(exc).__name__}: {exc}"[:300])


def test_200_clients_a_fifth_dropping_streams(start_fuzz_server):
    server = start_fuzz_server("--parallel", "4", "--queue-size", "64", ctx_size=512)
    base = server.api_base
    pid = server.process.pid
    tally = Tally()
    started = time.monotonic()
    deadline = started + SECONDS
    threads = [
        threading.Thread(target=client, args=(n, base, deadline, tally), daemon=True) for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(WARM_UP)
    rss_after_warm_up = rss_mib(pid)
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()) + REQUEST_TIMEOUT[1] + 10)
    assert not any(thread.is_alive() for thread in threads), "clients still waiting: a hang"

    assert not tally.problems, tally.problems
    assert set(tally.statuses) <= {200, 429}, tally.statuses
    assert tally.statuses[200] > 100 and tally.statuses[429] > 0, tally.statuses
    assert tally.dropped > 20, tally.dropped

    # Afterwards: the dropped streams were cancelled, every slot is free, nothing waits.
    stats = {}
    for _ in range(100):
        stats = requests.get(base + "/v1/internal/model/info", timeout=10).json()["stats"]
        if stats["busy_slots"] == 0 and stats["queued"] == 0:
            break
        time.sleep(0.1)
    assert stats == {"slots": 4, "busy_slots": 0, "queued": 0}, stats
    metrics = requests.get(base + "/metrics", timeout=10).text
    assert 'finish_reason="cancelled"' in metrics  # the hang-ups stopped their generations
    quick = time.monotonic()
    reply = requests.post(
        base + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    )
    assert reply.status_code == 200 and time.monotonic() - quick < 5
    growth = rss_mib(pid) - rss_after_warm_up
    print(f"soak: {dict(tally.statuses)}, {tally.dropped} dropped streams, RSS +{growth:.1f} MiB")
    assert growth <= RSS_GROWTH_MIB, f"RSS grew by {growth:.1f} MiB"
