"""Hearth against llama.cpp's llama-server (and `python -m llama_cpp.server`), interleaved.

Same model (the default SmolLM2-135M-Instruct), threads (`-t 1 -tb 2`), 4 slots and
request (96 tokens of `/v1/completions` at temperature 0.8, streamed). Each round runs every
scenario on every server back to back, in an order that alternates between rounds, so that
the machine's drift (a third over an afternoon here) hits both alike; the figures are the
median, min and max over rounds of the per-round ratio Hearth / llama-server.

Scenarios: one stream (decode tokens/s after the first token), 4 concurrent streams
(aggregate tokens/s, and their time to first token), 8 clients on 4 slots (aggregate), and
the limit: a bare low-level loop in a process of its own (one-token `llama_decode` plus the
same sampler chain, no server). With --draft, Hearth with prompt-lookup drafting against
itself without, on a task that repeats its input, at temperature 0 (same text required).
With --neighbour, a bounded busy loop runs on one core the whole time.

    .venv/bin/python bench/bench_peers.py --rounds 7 [--peer-python] [--draft] [--neighbour]

llama-server is built once from the llama.cpp sources the wheel is built from (see
bench/llama_server.py, ~7 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from bench_load import free_port, prompt_for, token_counter, wait_healthy  # noqa: E402
from llama_server import llama_server  # noqa: E402

TOKENS = 96
SAMPLING = {"temperature": 0.8, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
REPEAT_TASK = (
    "<|im_start|>user\nRewrite this paragraph exactly, changing only the word 'blue' to 'green':\n\n"
    "The old lighthouse stood on the blue cliff above the harbour. Every evening the keeper "
    "climbed the one hundred and twelve steps, trimmed the wick, polished the great lens and "
    "watched the fishing boats come home before the light went out over the water.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@dataclass
class Stream:
    started: float
    first: float | None = None
    ended: float = 0.0
    tokens: int = 0
    text: str = ""


@dataclass
class Target:
    name: str
    base: str
    extra: dict = field(default_factory=dict)  # body fields only this server understands

    def stream(self, prompt: str, tokens: int, seed: int, **fields) -> Stream:
        result = Stream(time.perf_counter())
        body = {"prompt": prompt, "max_tokens": tokens, "stream": True, "seed": seed, **SAMPLING}
        body |= self.extra | fields
        parts = []
        with requests.post(f"{self.base}/v1/completions", json=body, stream=True, timeout=600) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                text = choices[0].get("text") or ""
                if text:
                    result.first = result.first or time.perf_counter()
                    parts.append(text)
        result.ended = time.perf_counter()
        result.text = "".join(parts)
        return result


def concurrent(target: Target, clients: int, count_tokens, seed: int) -> list[Stream]:
    results: list[Stream | None] = [None] * clients

    def client(i: int) -> None:
        results[i] = target.stream(prompt_for(i), TOKENS, seed + i, ignore_eos=True)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [r for r in results if r is not None]
    for r in done:
        r.tokens = count_tokens(r.text)
    return done


def single_decode_rate(streams: list[Stream]) -> float:
    [s] = streams
    return (s.tokens - 1) / (s.ended - s.first)


def aggregate(streams: list[Stream]) -> float:
    return sum(s.tokens for s in streams) / (max(s.ended for s in streams) - min(s.started for s in streams))


def ttft_ms(streams: list[Stream]) -> float:
    return statistics.median((s.first - s.started) * 1000 for s in streams)


# --- The limit: a bare loop ------------------------------------------------------------------------


def bare_loop(model_path: str, tokens: int, rounds: int) -> None:
    """One-token llama_decode and the same sampler chain, no server; prints tok/s per run."""
    import ctypes

    import llama_cpp as ll

    ll.llama_backend_init()
    model = ll.llama_model_load_from_file(model_path.encode(), ll.llama_model_default_params())
    params = ll.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_threads, params.n_threads_batch = 2048, 512, 1, 2
    ctx = ll.llama_init_from_model(model, params)
    vocab = ll.llama_model_get_vocab(model)
    prompt = prompt_for(0).encode()
    ids = (ll.llama_token * 512)()
    n = ll.llama_tokenize(vocab, prompt, len(prompt), ids, 512, True, True)
    for run in range(rounds):
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(SAMPLING["temperature"]))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(1234 + run))
        ll.llama_memory_clear(ll.llama_get_memory(ctx), True)
        ll.llama_decode(ctx, ll.llama_batch_get_one(ids, n))
        token = ll.llama_sampler_sample(chain, ctx, -1)
        one = (ll.llama_token * 1)()
        started = time.perf_counter()
        for _ in range(tokens - 1):
            one[0] = token
            ll.llama_decode(ctx, ll.llama_batch_get_one(ctypes.cast(one, ctypes.POINTER(ll.llama_token)), 1))
            token = ll.llama_sampler_sample(chain, ctx, -1)
        print(json.dumps({"tok_s": (tokens - 1) / (time.perf_counter() - started)}), flush=True)
        ll.llama_sampler_free(chain)


def bare_rate(model_path: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--bare-loop", str(model_path)],
        capture_output=True,
        text=True,
        check=True,
        env=peer_env(),
    )
    return statistics.median(json.loads(line)["tok_s"] for line in out.stdout.splitlines())


# --- Servers --------------------------------------------------------------------------------------


def peer_env() -> dict:
    """Hearth's own OpenMP settings must not leak into a peer's environment (FACTS.md)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}


def start_servers(
    args,
    model_path: Path,
    hearth_launch: tuple[str, ...] = ("server.py",),
    peer_extra_env: dict | None = None,
) -> tuple[list[subprocess.Popen], list[Target]]:
    """Hearth (started as `python *hearth_launch`), llama-server and, if asked, llama_cpp.server."""
    logs = ROOT / "bench" / "results"
    (logs / "user_data").mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(3)]
    hearth = [
        sys.executable, *hearth_launch, "--nowebui", "--api", "--api-port", str(ports[0]),
        "--parallel", "4", "--threads", "1", "--threads-batch", "2", "--ctx-size", "2048",
        "--user-data-dir", str(logs / "user_data"), *args.hearth_arg,
    ]  # fmt: skip
    server = [
        str(llama_server()), "-m", str(model_path), "--no-webui", "--port", str(ports[1]),
        "-t", "1", "-tb", "2", "--parallel", "4", "-c", str(2048 * 4), "--log-disable", *args.server_arg,
    ]  # fmt: skip
    commands = [(hearth, "Hearth", {}), (server, "llama-server", {})]
    if args.peer_python:
        python_peer = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--port", str(ports[2]),
            "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "2", "--interrupt_requests", "False",
        ]  # fmt: skip
        commands.append((python_peer, "llama_cpp.server", {}))
    processes, targets = [], []
    for (command, name, extra), port in zip(commands, ports, strict=False):
        env = (
            {**os.environ, **dict(kv.split("=", 1) for kv in args.hearth_env)}
            if name == "Hearth"
            else peer_env() | (peer_extra_env or {})
        )
        library_path = str(Path(command[0]).parent) if name == "llama-server" else None
        if library_path:
            env = {**env, "LD_LIBRARY_PATH": library_path}
        log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        targets.append(Target(name, f"http://127.0.0.1:{port}", extra))
    for process, target in zip(processes, targets, strict=True):
        wait_healthy(
            f"{target.base}/health" if target.name != "llama_cpp.server" else f"{target.base}/v1/models",
            process,
        )
    return processes, targets


def stop_servers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=20)


def neighbour(seconds: float) -> subprocess.Popen:
    """A CPU-bound process on the machine for the whole run (bounded in time)."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


# --- The run ---------------------------------------------------------------------------------------

SCENARIOS = {
    "1 stream, decode tok/s": (1, single_decode_rate),
    "4 streams, aggregate tok/s": (4, aggregate),
    "4 streams, TTFT ms": (4, ttft_ms),
    "8 clients on 4 slots, aggregate tok/s": (8, aggregate),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--peer-python", action="store_true", help="also run python -m llama_cpp.server")
    parser.add_argument("--draft", action="store_true", help="also measure prompt-lookup drafting")
    parser.add_argument("--neighbour", action="store_true", help="a busy loop on one core all along")
    parser.add_argument(
        "--hearth-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="a flag for Hearth (--hearth-arg=--flash-attn)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="a flag for llama-server (--server-arg=-fa --server-arg=off)",
    )
    parser.add_argument(
        "--hearth-env", action="append", default=[], metavar="NAME=VALUE", help="in Hearth's environment"
    )
    parser.add_argument("--bare-loop", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        return bare_loop(args.bare_loop, TOKENS, 5)

    from modules.engines.manager import builtin_model_path

    model_path = builtin_model_path()
    count_tokens = token_counter(model_path)

    busy = neighbour(3600) if args.neighbour else None
    processes, targets = start_servers(args, model_path)
    results: dict[str, dict[str, list[float]]] = {s: {t.name: [] for t in targets} for s in SCENARIOS}
    bare: list[float] = []
    drafts: list[tuple[float, float, bool]] = []
    try:
        for target in targets:  # warm up
            target.stream(prompt_for(0), 8, 1)
        for round_ in range(args.rounds):
            order = targets if round_ % 2 == 0 else list(reversed(targets))
            for scenario, (clients, figure) in SCENARIOS.items():
                if scenario.endswith("TTFT ms"):
                    continue  # read from the 4-stream runs
                for target in order:
                    streams = concurrent(target, clients, count_tokens, seed=100 * round_)
                    results[scenario][target.name].append(figure(streams))
                    if clients == 4:
                        results["4 streams, TTFT ms"][target.name].append(ttft_ms(streams))
            bare.append(bare_rate(model_path))
            if args.draft:
                drafts.append(draft_pair(targets[0], count_tokens))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        stop_servers(processes)
        if busy is not None:
            busy.kill()
    report(results, bare, drafts, args)


def draft_pair(hearth: Target, count_tokens) -> tuple[float, float, bool]:
    """Hearth's decode tok/s with its default drafting (on for a sequence alone) and with
    drafting off, same task, greedy."""
    rates, texts = [], []
    for drafting in (None, False):
        s = hearth.stream(REPEAT_TASK, 200, 0, temperature=0, speculative=drafting)
        s.tokens = count_tokens(s.text)
        rates.append((s.tokens - 1) / (s.ended - s.first))
        texts.append(s.text)
    return rates[0], rates[1], texts[0] == texts[1]


def ratio_line(name: str, ours: list[float], theirs: list[float], lower_is_better: bool = False) -> str:
    pairs = [(b / a if lower_is_better else a / b) for a, b in zip(ours, theirs, strict=True)]
    return (
        f"  {name:40} Hearth {statistics.median(ours):7.1f}  llama-server {statistics.median(theirs):7.1f}"
        f"   ratio median {statistics.median(pairs):.2f} (min {min(pairs):.2f}, max {max(pairs):.2f})"
    )


def report(results, bare, drafts, args) -> None:
    print(
        f"SmolLM2-135M-Instruct Q4_1, {TOKENS} tokens, temperature 0.8, -t 1 -tb 2, 4 slots, "
        f"{args.rounds} interleaved rounds{', with a CPU-bound neighbour' if args.neighbour else ''}"
    )
    for scenario, by_target in results.items():
        ours, theirs = by_target["Hearth"], by_target["llama-server"]
        print(ratio_line(scenario, ours, theirs, lower_is_better=scenario.endswith("ms")))
        if "llama_cpp.server" in by_target:
            print(f"  {'':40} llama_cpp.server {statistics.median(by_target['llama_cpp.server']):7.1f}")
    single = results["1 stream, decode tok/s"]["Hearth"]
    pairs = [a / b for a, b in zip(single, bare, strict=True)]
    print(
        f"  {'1 stream against the bare loop':40} Hearth {statistics.median(single):7.1f}  bare loop "
        f"{statistics.median(bare):7.1f}   ratio median {statistics.median(pairs):.2f} "
        f"(min {min(pairs):.2f}, max {max(pairs):.2f})"
    )
    four = results["4 streams, aggregate tok/s"]["Hearth"]
    scaling = statistics.median(a / b for a, b in zip(four, single, strict=True))
    print(f"  {'4 streams / 1 stream (Hearth)':40} {scaling:.2f}")
    if drafts:
        speedups = [on / off for on, off, _ in drafts]
        on, off = statistics.median(d[0] for d in drafts), statistics.median(d[1] for d in drafts)
        print(
            f"  {'prompt-lookup drafting, repeat task':40} on {on:7.1f}  off {off:7.1f}"
            f"   speed-up median {statistics.median(speedups):.2f} (min {min(speedups):.2f}, "
            f"max {max(speedups):.2f}); same text: {all(d[2] for d in drafts)}"
        )


if __name__ == "__main__":
    main()
