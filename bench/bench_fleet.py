"""Hearth in front of a simulated fleet: throughput against capacity, added time to first
token, and Hearth's CPU per 1,000 tokens, for 1, 4 and 16 machines.

The machines are bench/fleet_sim.py boxes (llama-server's API; `--slots` slots streaming
`--rate` tokens per second each, sleeping instead of computing), all in one process. Hearth
runs as users run it (`server.py --nowebui --no-local-model --upstream ...`, one gevent
worker). For each fleet size:

1. time to first token, one request at a time, alternately straight to a box and through
   Hearth (chat completions, so Hearth renders the prompt, counts its tokens at the box and
   routes it): Hearth's added time is the difference of the medians (and of the p99s);
2. full load: as many clients as the fleet has slots, each sending one streamed chat after
   another; the tokens that arrive during the measured window give the aggregate rate,
   compared with the fleet's capacity (machines x slots x rate), and Hearth's CPU time in
   that window (from /proc) gives its CPU per 1,000 tokens;
3. the same load straight to the boxes (clients spread evenly), for reference.

    .venv/bin/python bench/bench_fleet.py --machines 1 4 16 --slots 4 --rate 20 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import free_port, make_user_data, start_server  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


# --- A lean HTTP client (the load generator must cost little CPU) ---------------------------------


@dataclass
class Tally:
    window: tuple[float, float] = (math.inf, math.inf)
    tokens: int = 0  # arrived inside the window
    ttfts: list[float] = field(default_factory=list)  # of requests started inside the window
    errors: int = 0


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict, tally: Tally | None) -> float | None:
        """Send a streamed request; count its tokens; return its time to first token."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        data = json.dumps(body).encode()
        started = time.monotonic()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace") + (await self.reader.read(2000)).decode())
        first = None
        buffer = b""
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                await self.reader.readline()
                break
            buffer += await self.reader.readexactly(size)
            await self.reader.readline()
            *events, buffer = buffer.split(b"\n\n")
            count = sum(1 for event in events if b" tok" in event)  # one token per event
            if count:
                now = time.monotonic()
                if first is None:
                    first = now - started
                if tally is not None and tally.window[0] <= now <= tally.window[1]:
                    tally.tokens += count
        if tally is not None and first is not None and tally.window[0] <= started <= tally.window[1]:
            tally.ttfts.append(first)
        return first


def chat_body(text: str, tokens: int) -> dict:
    messages = [{"role": "user", "content": text}]
    return {"model": "sim", "messages": messages, "max_tokens": tokens, "stream": True}


def completion_body(text: str, tokens: int) -> dict:
    prompt = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
    return {"model": "sim", "prompt": prompt, "max_tokens": tokens, "stream": True}


# --- The measurements ------------------------------------------------------------------------------


async def first_tokens(hearth_port: int, box_ports: list[int], requests: int) -> tuple[list, list]:
    """One request at a time, alternately through Hearth and straight to a box."""
    via, direct = [], []
    hearth, boxes = Connection(hearth_port), [Connection(p) for p in box_ports]
    for i in range(requests):
        text = f"Say something, request {i}"
        direct.append(await boxes[i % len(boxes)].post("/v1/completions", completion_body(text, 2), None))
        via.append(await hearth.post("/v1/chat/completions", chat_body(text, 2), None))
    return via, direct


@dataclass(frozen=True)
class Load:
    ports: list[int]  # spread over these (one Hearth, or every box)
    path: str
    body: Callable[[str, int], dict]
    clients: int
    tokens: int  # per request
    warmup: float
    seconds: float


async def full_load(load: Load) -> Tally:
    """Closed loop: each client sends its next request as soon as the last one ended."""
    tally = Tally()
    start = time.monotonic()
    tally.window = (start + load.warmup, start + load.warmup + load.seconds)

    async def client(c: int) -> None:
        port = load.ports[c % len(load.ports)]
        connection = Connection(port)
        i = 0
        while time.monotonic() < tally.window[1]:
            body = load.body(f"Client {c} request {i}: tell me a story", load.tokens)
            try:
                await connection.post(load.path, body, tally)
            except (ConnectionError, RuntimeError, asyncio.IncompleteReadError):
                tally.errors += 1
                connection = Connection(port)
            i += 1

    await asyncio.gather(*(client(c) for c in range(load.clients)))
    return tally


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(values: list[float], p: float) -> float:
    if not values:  # no request started inside a short window
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def start_fleet(machines: int, args, folder: Path):
    """The simulated boxes (one process) and Hearth in front of them."""
    ports = [free_port() for _ in range(machines)]
    command = [sys.executable, str(ROOT / "bench" / "fleet_sim.py"), "--ports", *map(str, ports)]
    command += ["--slots", str(args.slots), "--rate", str(args.rate), "--prefill-ms", str(args.prefill_ms)]
    sim = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert sim.stdout.readline().strip() == "ready"
    user_data = make_user_data(folder / f"user_data-{machines}")
    upstreams = [a for i, port in enumerate(ports) for a in ("--upstream", f"box{i}=http://127.0.0.1:{port}")]
    try:
        hearth = start_server(
            ["--nowebui", "--no-local-model", "--user-data-dir", str(user_data), *upstreams],
            log_path=folder / f"hearth-{machines}.log",
        )
    except BaseException:
        sim.terminate()
        raise
    return sim, hearth, ports


def run_round(machines: int, args, hearth, ports: list[int]) -> dict:
    via, direct = asyncio.run(first_tokens(hearth.api_port, ports, args.ttft_requests))
    clients = machines * args.slots
    common = {"clients": clients, "tokens": args.tokens, "warmup": args.warmup, "seconds": args.seconds}
    before = cpu_seconds(hearth.process.pid)
    loaded = asyncio.run(full_load(Load([hearth.api_port], "/v1/chat/completions", chat_body, **common)))
    cpu = (cpu_seconds(hearth.process.pid) - before) * args.seconds / (args.seconds + args.warmup)
    baseline = asyncio.run(full_load(Load(ports, "/v1/completions", completion_body, **common)))
    capacity = machines * args.slots * args.rate
    return {
        "ratio": loaded.tokens / args.seconds / capacity,
        "direct_ratio": baseline.tokens / args.seconds / capacity,
        "rate": loaded.tokens / args.seconds,
        "added_p50": (statistics.median(via) - statistics.median(direct)) * 1000,
        "added_p99": (percentile(via, 99) - percentile(direct, 99)) * 1000,
        "load_p50": percentile(loaded.ttfts, 50) * 1000,
        "load_p99": percentile(loaded.ttfts, 99) * 1000,
        "direct_load_p50": percentile(baseline.ttfts, 50) * 1000,
        "direct_load_p99": percentile(baseline.ttfts, 99) * 1000,
        "cpu_per_1000": cpu / max(1, loaded.tokens) * 1000,
        "cores": cpu / args.seconds,
        "errors": loaded.errors + baseline.errors,
    }


def run_fleet(machines: int, args, folder: Path) -> dict:
    """Medians of `--rounds` rounds on one fleet."""
    sim, hearth, ports = start_fleet(machines, args, folder)
    try:
        rounds = [run_round(machines, args, hearth, ports) for _ in range(args.rounds)]
    finally:
        hearth.stop()
        sim.terminate()
        sim.wait(timeout=10)
    row = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    row["errors"] = sum(r["errors"] for r in rounds)
    row.update(machines=machines, capacity=machines * args.slots * args.rate)
    return row


HEADER = (
    "| machines x slots | capacity tok/s | through Hearth tok/s (of capacity) | boxes direct (of capacity) "
    "| added TTFT p50 / p99 ms | TTFT at full load p50 / p99 ms: Hearth, direct "
    "| Hearth CPU s per 1,000 tokens | Hearth CPU, cores |"
)


def table_row(r: dict, slots: int) -> str:
    return (
        f"| {r['machines']} x {slots} | {r['capacity']:.0f} | {r['rate']:.0f} ({r['ratio']:.3f}) "
        f"| {r['direct_ratio']:.3f} | {r['added_p50']:.1f} / {r['added_p99']:.1f} "
        f"| {r['load_p50']:.0f} / {r['load_p99']:.0f}, "
        f"{r['direct_load_p50']:.0f} / {r['direct_load_p99']:.0f} "
        f"| {r['cpu_per_1000']:.3f} | {r['cores']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="tokens per second per slot")
    parser.add_argument("--prefill-ms", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per request")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window under load")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--ttft-requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="per fleet size; medians are shown")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for machines in args.machines:
            row = run_fleet(machines, args, Path(folder))
            rows.append(row)
            print(json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
    print()
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(table_row(row, args.slots))
    busiest = rows[-1]["cpu_per_1000"] / 1000  # at the largest fleet: the steady per-token cost
    per_worker = 0.7 / busiest
    print(
        f"\nOne gevent worker carries about {per_worker:.0f} tokens/s at 70% of a core here: a fleet "
        f"streaming T tokens/s needs ceil(T / {per_worker:.0f}) workers."
    )


if __name__ == "__main__":
    main()
