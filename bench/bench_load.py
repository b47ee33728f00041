"""Serving under load: Hearth against raw llama_cpp.Llama and `python -m llama_cpp.server`.

Same model (the default SmolLM2-135M-Instruct), prompts, greedy sampling and threads for
all three, measured in one run. For 1, 2, 4 and 8 concurrent streaming clients it reports
aggregate tokens/s, tokens/s per stream and time to first token (p50/p95). Then, for
Hearth: a short request's time to first token while 3 long generations run, the second
turn of a chat with a ~1,000-token system prompt against evaluating only the new tokens,
and how fast a disconnected stream's slot is free again (read from /metrics).

    python bench/bench_load.py [--clients 1 2 4 8] [--tokens 64] [--threads 1] [--threads-batch 2]
                               [--skip-peer] [--markdown]

Tokens are counted the same way for every target: the streamed text of each client is
tokenized with the model's own tokenizer at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = [
    "a lighthouse keeper",
    "a baker in Lyon",
    "a robot gardener",
    "two rival chess players",
    "a lost cat in Tokyo",
    "a mountain rescue team",
    "a jazz pianist",
    "an old map collector",
]


def prompt_for(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"<|im_start|>user\nWrite a long story about {topic}. Client {i}.<|im_end|>\n<|im_start|>assistant\n"
    )


@dataclass
class StreamResult:
    started: float
    first: float | None
    ended: float
    text: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def token_counter(model_path: Path):
    """How many of the model's tokens a streamed text is (its vocabulary alone is loaded)."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)

    def count_tokens(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False, special=True)) if text else 0

    return count_tokens


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url}: not healthy after {timeout}s")


class HttpTarget:
    """An OpenAI-compatible server: streams /v1/completions."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.base = base

    def stream(
        self,
        prompt: str,
        tokens: int,
        stop_event: threading.Event | None = None,
        close_after: int | None = None,
    ) -> StreamResult:
        started = time.perf_counter()
        first = None
        parts: list[str] = []
        body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True}
        with requests.post(f"{self.base}/v1/completions", json=body, stream=True, timeout=600) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                text = json.loads(line[6:])["choices"][0].get("text", "")
                if text and first is None:
                    first = time.perf_counter()
                parts.append(text)
                if close_after is not None and len(parts) >= close_after:
                    break
                if stop_event is not None and stop_event.is_set():
                    break
        return StreamResult(started, first, time.perf_counter(), "".join(parts))


class RawTarget:
    """llama_cpp.Llama in this process: not thread-safe, so concurrent clients take turns."""

    name = "raw llama_cpp.Llama"

    def __init__(self, model_path: Path, threads: int, threads_batch: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(model_path),
            n_ctx=2048,
            n_threads=threads,
            n_threads_batch=threads_batch,
            verbose=False,
        )
        self.lock = threading.Lock()

    def stream(self, prompt: str, tokens: int, **_) -> StreamResult:
        started = time.perf_counter()
        first = None
        parts = []
        with self.lock:
            for chunk in self.llm.create_completion(prompt, max_tokens=tokens, temperature=0, stream=True):
                text = chunk["choices"][0]["text"]
                if text and first is None:
                    first = time.perf_counter()
                parts.append(text)
        return StreamResult(started, first, time.perf_counter(), "".join(parts))


def measure(target, clients: int, tokens: int, count_tokens, rounds: int) -> dict:
    """The medians over `rounds` runs of `clients` concurrent streams."""
    runs = [run_clients(target, clients, tokens, count_tokens) for _ in range(rounds)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def run_clients(target, clients: int, tokens: int, count_tokens) -> dict:
    results: list[StreamResult | None] = [None] * clients

    def client(i: int) -> None:
        results[i] = target.stream(prompt_for(i), tokens)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [r for r in results if r is not None]
    counts = [count_tokens(r.text) for r in done]
    start = min(r.started for r in done)
    end = max(r.ended for r in done)
    per_stream = [
        (n - 1) / (r.ended - r.first)
        for r, n in zip(done, counts, strict=True)
        if r.first and r.ended > r.first and n > 1
    ]
    ttfts = sorted((r.first - r.started) * 1000 for r in done if r.first)
    return {
        "aggregate": sum(counts) / (end - start),
        "per_stream": statistics.median(per_stream) if per_stream else 0.0,
        "ttft_p50": percentile(ttfts, 50),
        "ttft_p95": percentile(ttfts, 95),
        "tokens": sum(counts),
    }


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    k = (len(values) - 1) * pct / 100
    low, high = int(k), min(int(k) + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (k - low)


def short_request_under_load(target: HttpTarget, samples: int = 5) -> float:
    """Time to first token (ms) of a short request while 3 long generations stream."""
    stop = threading.Event()
    failures: list[str] = []

    def long_run(i: int) -> None:
        try:
            target.stream(prompt_for(i), 1500, stop_event=stop)
        except requests.RequestException as exc:
            failures.append(repr(exc))

    long_runs = [threading.Thread(target=long_run, args=(i,)) for i in range(3)]
    for run in long_runs:
        run.start()
    time.sleep(2.0)  # let all three reach steady generation
    times = []
    for i in range(samples):
        result = target.stream(f"<|im_start|>user\nSay hi {i}.<|im_end|>\n<|im_start|>assistant\n", 1)
        times.append((result.first - result.started) * 1000 if result.first else float("nan"))
        time.sleep(0.3)
    stop.set()
    for run in long_runs:
        run.join()
    if failures:
        raise RuntimeError(f"{target.name}: long generations failed: {failures}")
    return statistics.median(times)


def second_turn(target: HttpTarget, count_tokens, samples: int = 3) -> tuple[float, float, int]:
    """Medians of (turn-2 TTFT ms, TTFT ms of a prompt made of only the new tokens), and the
    number of new tokens, over conversations with different system prompts."""
    turns, alones, news = [], [], []
    for i in range(samples):
        system = (f"You are Hearth's helpful assistant number {i}. Follow the house rules. " * 75).strip()
        turn1 = (
            f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nWhat is a lighthouse?"
            "<|im_end|>\n<|im_start|>assistant\n"
        )
        reply = target.stream(turn1, 32).text
        new = (
            f"{reply}<|im_end|>\n<|im_start|>user\nAnd who keeps one running today?<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
        second = target.stream(turn1 + new, 1)
        alone = target.stream(new, 1)  # nothing of it is cached: the cost of evaluating just these
        turns.append((second.first - second.started) * 1000)
        alones.append((alone.first - alone.started) * 1000)
        news.append(count_tokens(new))
    return statistics.median(turns), statistics.median(alones), int(statistics.median(news))


def slot_free_after_disconnect(target: HttpTarget) -> float:
    """Milliseconds from closing a stream until /metrics shows no busy slot."""
    target.stream(prompt_for(0), 1500, close_after=5)
    closed = time.perf_counter()
    while time.perf_counter() - closed < 5:
        text = requests.get(f"{target.base}/metrics", timeout=5).text
        busy = [line for line in text.splitlines() if line.startswith("hearth_busy_slots{")]
        if busy and all(float(line.rsplit(" ", 1)[1]) == 0 for line in busy):
            return (time.perf_counter() - closed) * 1000
        time.sleep(0.002)
    return float("inf")


def start_hearth(args, port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "server.py",
        "--nowebui",
        "--api",
        "--api-port",
        str(port),
        "--parallel",
        str(max(args.clients)),
        "--threads",
        str(args.threads),
        "--threads-batch",
        str(args.threads_batch),
        "--ctx-size",
        "2048",
        "--user-data-dir",
        str(ROOT / "bench" / "results" / "user_data"),
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_peer(args, port: int, model_path: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        str(args.threads),
        "--n_threads_batch",
        str(args.threads_batch),
        "--interrupt_requests",
        "False",
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="runs per row; medians are shown")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--threads-batch", type=int, default=2)
    parser.add_argument("--skip-peer", action="store_true", help="do not run llama_cpp.server")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args()

    from modules.engines.manager import builtin_model_path

    model_path = builtin_model_path()
    count_tokens = token_counter(model_path)

    (ROOT / "bench" / "results" / "user_data").mkdir(parents=True, exist_ok=True)
    processes = []
    hearth_port, peer_port = free_port(), free_port()
    processes.append(start_hearth(args, hearth_port))
    hearth = HttpTarget("Hearth", f"http://127.0.0.1:{hearth_port}")
    targets: list = [hearth]
    if not args.skip_peer:
        processes.append(start_peer(args, peer_port, model_path))
        targets.append(HttpTarget("llama_cpp.server", f"http://127.0.0.1:{peer_port}"))
    try:
        wait_healthy(f"{hearth.base}/health", processes[0])
        if not args.skip_peer:
            wait_healthy(f"{targets[1].base}/v1/models", processes[1])
        targets.append(RawTarget(model_path, args.threads, args.threads_batch))
        for target in targets:  # warm up
            target.stream(prompt_for(0), 8)

        rows = []
        for clients in args.clients:
            order = targets if clients % 2 else list(reversed(targets))
            for target in order:
                time.sleep(0.5)
                stats = measure(target, clients, args.tokens, count_tokens, args.rounds)
                rows.append((clients, target.name, stats))
        single_raw = next(s["aggregate"] for c, n, s in rows if c == 1 and n.startswith("raw"))
        print_table(rows, single_raw, args)

        print()
        under_load = short_request_under_load(hearth)
        print(
            f"Hearth: time to first token of a short request while 3 long generations run: "
            f"{under_load:.0f} ms (median of 5)"
        )
        if not args.skip_peer:  # it serves one request at a time: one sample is plenty
            print(f"llama_cpp.server, same: {short_request_under_load(targets[1], samples=1):.0f} ms")
        turn2, alone, new_tokens = second_turn(hearth, count_tokens)
        print(
            f"Hearth: second chat turn after a ~1,000-token system prompt: time to first token "
            f"{turn2:.0f} ms; evaluating only its {new_tokens} new tokens: {alone:.0f} ms "
            f"(ratio {turn2 / alone:.2f}; medians of 3)"
        )
        freed = slot_free_after_disconnect(hearth)
        print(f"Hearth: a disconnected stream's slot is free in /metrics after {freed:.0f} ms")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def print_table(rows, single_raw: float, args) -> None:
    print(
        f"SmolLM2-135M-Instruct Q4_1, {args.tokens} tokens per client, greedy, threads "
        f"{args.threads}/{args.threads_batch} ({os.cpu_count()} cores), medians of {args.rounds} runs"
    )
    header = [
        "clients",
        "target",
        "aggregate tok/s",
        "x raw single",
        "per-stream tok/s",
        "TTFT p50 ms",
        "TTFT p95 ms",
    ]
    lines = [header] + [
        [
            str(c),
            name,
            f"{s['aggregate']:.1f}",
            f"{s['aggregate'] / single_raw:.2f}",
            f"{s['per_stream']:.1f}",
            f"{s['ttft_p50']:.0f}",
            f"{s['ttft_p95']:.0f}",
        ]
        for c, name, s in rows
    ]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines[1:]:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
