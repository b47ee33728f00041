"""llama.cpp built different ways, side by side: prompt speed, one stream, batched decode.

Each build is a llama-cpp-python wheel (for example built with `CMAKE_ARGS="-DGGML_NATIVE=ON"
pip wheel --no-deps --no-cache-dir llama-cpp-python==X -w DIR`), installed into a virtualenv
of its own; every round runs the same measurement in each, in alternating order, on the
default model (SmolLM2-135M-Instruct), with the benchmark threads (-t 1 -tb 2):

- prompt: tokens/s evaluating a 512-token prompt (threads_batch);
- 1 stream: tokens/s of one-token decodes (threads);
- 4 streams: tokens/s of 4 sequences decoded together, one token each per step.

    .venv/bin/python bench/bench_builds.py NAME=WHEEL [NAME=WHEEL ...] --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(model_path: str) -> None:
    """Runs inside one build's virtualenv: prints one JSON line of figures."""
    import ctypes

    import llama_cpp as ll

    ll.llama_backend_init()
    model = ll.llama_model_load_from_file(model_path.encode(), ll.llama_model_default_params())
    params = ll.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 4096, 512, 512, 4
    params.n_threads, params.n_threads_batch, params.kv_unified = 1, 2, False
    ctx = ll.llama_init_from_model(model, params)
    memory = ll.llama_get_memory(ctx)
    batch = ll.llama_batch_init(512, 0, 4)

    def decode(items: list[tuple[int, int, int, bool]]) -> None:  # token, position, seq, logits
        for i, (token, position, seq, logits) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
            batch.seq_id[i][0], batch.logits[i] = seq, logits
        batch.n_tokens = len(items)
        assert ll.llama_decode(ctx, batch) == 0

    tokens = [(100 + (i * 37) % 20000) for i in range(512)]
    ll.llama_memory_clear(memory, True)
    started = time.perf_counter()
    decode([(t, p, 0, p == 511) for p, t in enumerate(tokens)])
    prompt = 512 / (time.perf_counter() - started)
    ll.llama_memory_clear(memory, True)
    decode([(t, p, 0, False) for p, t in enumerate(tokens[:32])])
    started = time.perf_counter()
    for p in range(32, 160):
        decode([(tokens[p % 512], p, 0, True)])
    single = 128 / (time.perf_counter() - started)
    ll.llama_memory_clear(memory, True)
    for seq in range(4):
        decode([(t, p, seq, False) for p, t in enumerate(tokens[seq * 8 : seq * 8 + 32])])
    started = time.perf_counter()
    for p in range(32, 128):
        decode([(tokens[(p + seq) % 512], p, seq, True) for seq in range(4)])
    batched = 4 * 96 / (time.perf_counter() - started)
    ll.llama_batch_free(batch)
    del ctypes
    print(json.dumps({"prompt": prompt, "single": single, "batched": batched}))


def make_venv(folder: Path, wheel: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", folder], check=True)
    python = folder / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "numpy", "typing-extensions", "diskcache",
                    "jinja2", str(wheel)], check=True)  # fmt: skip
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="*", help="NAME=path/to/llama_cpp_python-*.whl")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure)
    sys.path.insert(0, str(ROOT))
    from modules.engines.manager import builtin_model_path

    model = str(builtin_model_path())
    with tempfile.TemporaryDirectory() as folder:
        pythons = {}
        for spec in args.builds:
            name, wheel = spec.split("=", 1)
            pythons[name] = make_venv(Path(folder) / name, Path(wheel))
        results: dict[str, list[dict]] = {name: [] for name in pythons}
        for round_ in range(args.rounds):
            order = list(pythons) if round_ % 2 == 0 else list(reversed(pythons))
            for name in order:
                out = subprocess.run(
                    [pythons[name], __file__, "--measure", model], capture_output=True, text=True, check=True
                )
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"SmolLM2-135M-Instruct, -t 1 -tb 2, {args.rounds} interleaved rounds (medians, tokens/s)")
    first = next(iter(results))
    for name, runs in results.items():
        keys = ("prompt", "single", "batched")
        figures = {key: statistics.median(run[key] for run in runs) for key in keys}
        base = {key: statistics.median(run[key] for run in results[first]) for key in figures}
        print(
            f"  {name:12} prompt {figures['prompt']:7.0f} ({figures['prompt'] / base['prompt']:.2f}x)  "
            f"1 stream {figures['single']:6.1f} ({figures['single'] / base['single']:.2f}x)  "
            f"4 streams {figures['batched']:6.1f} ({figures['batched'] / base['batched']:.2f}x)"
        )


if __name__ == "__main__":
    main()
