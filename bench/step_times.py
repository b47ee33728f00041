"""Every decode step of Hearth and llama-server timed from the inside, side by side.

`bench_peers.py` sees tokens arrive at the client; this splits a server's step into the
`llama_decode` call itself and the gap before it (sampling, batch building, handing tokens
to HTTP). A small C library wraps the call in both servers and writes one line per step:
llama-server loads it with LD_PRELOAD (its `llama_process` and `llama_decode` calls), Hearth
gets it in place of `llama_cpp.llama_decode` (a launcher mode of this script, which then
starts `server.py` unchanged). Both run as in `bench_peers.py` (default model, `-t 1 -tb 2`,
4 slots); each round runs N concurrent streams of 96 tokens on each, in alternating order,
and the figures are medians over each run's steps (the first three, its prompts, left out),
then the medians of the per-round ratios Hearth / llama-server.

    .venv/bin/python bench/step_times.py --rounds 6 [--clients 4]

Needs gcc (the wrapper is compiled once into the benchmark cache, next to llama-server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import bench_peers  # noqa: E402
from bench_load import prompt_for, token_counter  # noqa: E402
from llama_server import cache_dir  # noqa: E402

LOG_ENV = "HEARTH_STEP_LOG"  # where the wrapper appends its lines: tokens, decode ms, gap ms, end s
PROMPT_STEPS = 3  # a run's first steps evaluate its prompts

TIMER_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct { int32_t n_tokens; void *token, *embd, *pos, *n_seq_id, *seq_id, *logits; } llama_batch;
typedef int32_t (*decode_fn)(void *, llama_batch);
typedef int32_t (*process_fn)(void *, int, void *);

static decode_fn real_decode;
static process_fn real_process;
static int log_fd = -1;
static struct timespec last_end;

static double ms(struct timespec a, struct timespec b) {
    return (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
}

static void record(int32_t n_tokens, struct timespec start, struct timespec end) {
    if (log_fd < 0) log_fd = open(getenv("HEARTH_STEP_LOG"), O_WRONLY | O_CREAT | O_APPEND, 0644);
    char line[96];
    double gap = last_end.tv_sec ? ms(last_end, start) : -1;
    int n = snprintf(line, sizeof line, "%d %.4f %.4f %ld.%09ld\n", n_tokens, ms(start, end), gap,
                     (long)end.tv_sec, end.tv_nsec);
    if (log_fd >= 0 && write(log_fd, line, n) != n) { /* a lost line is a lost sample */ }
    last_end = end;
}

void hearth_set_decode(void *real) { real_decode = (decode_fn)real; }

int32_t hearth_timed_decode(void *ctx, llama_batch batch) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int32_t result = real_decode(ctx, batch);
    clock_gettime(CLOCK_MONOTONIC, &end);
    record(batch.n_tokens, start, end);
    return result;
}

int32_t llama_decode(void *ctx, llama_batch batch) {
    if (!real_decode) real_decode = (decode_fn)dlsym(RTLD_NEXT, "llama_decode");
    return hearth_timed_decode(ctx, batch);
}

int32_t llama_process(void *ctx, int type, void *batch) {  /* llama-server's call */
    if (!real_process) real_process = (process_fn)dlsym(RTLD_NEXT, "llama_process");
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int32_t result = real_process(ctx, type, batch);
    clock_gettime(CLOCK_MONOTONIC, &end);
    record(-1, start, end);
    return result;
}
"""


def timer_library() -> Path:
    library = cache_dir() / "step_timer.so"
    source = library.with_suffix(".c")
    if not library.is_file() or not source.is_file() or source.read_text() != TIMER_C:
        cache_dir().mkdir(parents=True, exist_ok=True)
        source.write_text(TIMER_C)
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", library, source, "-ldl"], check=True)
    return library


def serve_hearth_timed(argv: list[str]) -> int:
    """Hearth's server.py, with every llama_decode going through the timer."""
    import ctypes

    from gevent import monkey

    monkey.patch_all()
    from modules.engines.llamacpp.library import llama_library

    lib = llama_library()  # sets Hearth's OpenMP environment before the library loads
    timer = ctypes.CDLL(str(timer_library()))
    timer.hearth_set_decode(ctypes.cast(lib.llama_cpp._lib.llama_decode, ctypes.c_void_p))
    timed = timer.hearth_timed_decode
    timed.argtypes, timed.restype = [lib.llama_context_p_ctypes, lib.llama_batch], ctypes.c_int32
    lib.llama_decode = timed
    import server

    return server.main(argv)


def steps_between(path: Path, start: float, end: float) -> list[tuple[float, float]]:
    """(decode ms, gap ms) of the steps that ended within [start, end], prompts left out."""
    steps = []
    for line in path.read_text().splitlines():
        _, decode, gap, ended = line.split()
        if start <= float(ended) <= end:
            steps.append((float(decode), float(gap)))
    return steps[PROMPT_STEPS:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--serve-hearth", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hearth is not None:
        sys.exit(serve_hearth_timed(args.serve_hearth))

    from modules.engines.manager import builtin_model_path

    model_path = builtin_model_path()
    count_tokens = token_counter(model_path)

    logs = {name: ROOT / "bench" / "results" / f"steps-{name}.log" for name in ("Hearth", "llama-server")}
    for path in logs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    os.environ[LOG_ENV] = str(logs["Hearth"])
    peer = {LOG_ENV: str(logs["llama-server"]), "LD_PRELOAD": str(timer_library())}
    flags = argparse.Namespace(hearth_arg=[], server_arg=[], hearth_env=[], peer_python=False)
    launch = (str(Path(__file__).resolve()), "--serve-hearth")
    processes, targets = bench_peers.start_servers(
        flags, model_path, hearth_launch=launch, peer_extra_env=peer
    )
    runs: dict[str, list[tuple[float, float, float]]] = {t.name: [] for t in targets}  # aggregate, start, end
    try:
        for target in targets:  # warm up: the first requests load and compile what they need
            target.stream(prompt_for(0), 8, 1)
            bench_peers.concurrent(target, args.clients, count_tokens, seed=7)
        for round_ in range(args.rounds):
            for target in targets if round_ % 2 == 0 else list(reversed(targets)):
                start = time.monotonic()
                streams = bench_peers.concurrent(target, args.clients, count_tokens, seed=100 * round_)
                runs[target.name].append((bench_peers.aggregate(streams), start, time.monotonic()))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        bench_peers.stop_servers(processes)
    report(runs, logs, args)


def report(runs, logs, args) -> None:
    figures = {}  # name -> per round: (aggregate, decode, gap, step)
    for name, rounds in runs.items():
        figures[name] = []
        for aggregate, start, end in rounds:
            steps = steps_between(logs[name], start, end)
            decode = statistics.median(d for d, _ in steps)
            gap = statistics.median(g for _, g in steps)
            step = statistics.median(d + g for d, g in steps)
            figures[name].append((aggregate, decode, gap, step))
    print(f"{args.clients} streams of 96 tokens, {args.rounds} interleaved rounds; each run's medians, ms")
    for name, rows in figures.items():
        print(f"  {name}")
        for aggregate, decode, gap, step in rows:
            print(f"    {aggregate:6.1f} tok/s   decode {decode:6.2f}   gap {gap:5.2f}   step {step:6.2f}")
    ours, theirs = figures["Hearth"], figures["llama-server"]
    for i, what in enumerate(("aggregate tok/s", "decode ms", "gap ms", "step ms")):
        pairs = [a[i] / b[i] for a, b in zip(ours, theirs, strict=True)]
        print(
            f"  Hearth / llama-server, {what:16} median {statistics.median(pairs):.2f} "
            f"(min {min(pairs):.2f}, max {max(pairs):.2f})"
        )


if __name__ == "__main__":
    main()
