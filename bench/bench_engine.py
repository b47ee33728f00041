"""Engine overhead: Hearth's llama.cpp engine against raw `llama_cpp.Llama.create_completion`.

Same model (the default SmolLM2-135M-Instruct), prompt, greedy sampling, threads and
flash-attention setting (off); the runs alternate round by round in one process so that
machine noise hits all alike. Prints tokens/s and time to first token for each and the
engine/raw ratio of the medians, with the median, worst and best of the per-round ratios.

A second raw instance of the same model runs in every round too, as a control: its ratio
to the first (raw/raw) is what the machine's noise alone does to one round's ratio, so an
engine/raw round is read against it (identical code: worst rounds 0.833 and 0.855 in two runs here).

    python bench/bench_engine.py [--rounds 7] [--tokens 128] [--threads 1] [--threads-batch 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = (
    "<|im_start|>user\nWrite a long, detailed story about a lighthouse keeper who "
    "finds a message in a bottle. Describe every day of the week.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def run_raw(llm, prompt: str, tokens: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = None
    count = 0
    for chunk in llm.create_completion(prompt, max_tokens=tokens, temperature=0, stream=True):
        if chunk["choices"][0]["text"] and first is None:
            first = time.perf_counter()
        count += 1 if chunk["choices"][0]["text"] else 0
    end = time.perf_counter()
    return first - start, end - start, count


SPECULATIVE = {"auto": None, "on": True, "off": False}


def run_engine(engine, prompt: str, tokens: int, speculative: bool | None = None) -> tuple[float, float, int]:
    from modules.engines.base import GenerationRequest, SamplingParams

    start = time.perf_counter()
    first = None
    usage = None
    params = SamplingParams(max_tokens=tokens, temperature=0, speculative=speculative)
    for delta in engine.generate(GenerationRequest(prompt, params)):
        if delta.text and first is None:
            first = time.perf_counter()
        usage = delta.usage or usage
    end = time.perf_counter()
    return first - start, end - start, usage.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--threads-batch", type=int, default=2)
    parser.add_argument(
        "--speculative", choices=list(SPECULATIVE), default="auto", help="the engine's prompt-lookup drafting"
    )
    args = parser.parse_args()

    from modules.engines.llamacpp.library import llama_library, set_library_logging
    from modules.engines.media.runtime import prefer_passive_openmp

    prefer_passive_openmp()  # OpenMP as the server sets it up, before llama.cpp loads it
    llama_library()
    from llama_cpp import Llama

    from modules.engines.crossthread import make_mailer
    from modules.engines.llamacpp.engine import LlamaCppEngine
    from modules.engines.llamacpp.scheduler import ContextOptions
    from modules.engines.manager import builtin_model_path

    set_library_logging(False)
    path = builtin_model_path()
    raw_options = dict(
        model_path=str(path),
        n_ctx=2048,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads_batch,
        flash_attn=False,
        verbose=False,
    )
    raw = Llama(**raw_options)
    engine = LlamaCppEngine(
        "bench",
        path,
        ContextOptions(
            n_ctx=2048, parallel=1, threads=args.threads, threads_batch=args.threads_batch, batch_size=512
        ),
        make_mailer(),
    )

    control = Llama(**raw_options)
    speculative = SPECULATIVE[args.speculative]
    runs = [
        ("raw", run_raw, raw),
        ("engine", lambda e, p, t: run_engine(e, p, t, speculative), engine),
        ("control", run_raw, control),
    ]
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _, _ in runs}
    for round_ in range(args.rounds + 1):
        # A fresh prompt each round: every side evaluates it in full (no prefix reuse).
        prompt = f"<|im_start|>system\nRound {round_}.<|im_end|>\n" + PROMPT
        # Each side takes each place in the order equally often (rotated, then reversed).
        shift = round_ % len(runs)
        order = runs[shift:] + runs[:shift]
        if (round_ // len(runs)) % 2:
            order.reverse()
        for name, runner, target in order:
            time.sleep(0.3)  # let the other side's worker threads go idle
            result = runner(target, prompt, args.tokens)
            if round_ > 0:  # round 0 warms them up
                results[name].append(result)
    engine.close()

    print(
        f"SmolLM2-135M-Instruct Q4_1, {args.tokens} tokens, greedy, threads {args.threads}/"
        f"{args.threads_batch}, {args.rounds} interleaved rounds (medians)"
    )
    rates = {}
    for name, timings in results.items():
        tps = [(count - 1) / (total - ttft) for ttft, total, count in timings]
        rates[name] = statistics.median(tps)
        ttft_ms = statistics.median(ttft for ttft, _, _ in timings) * 1000
        tokens = {count for _, _, count in timings}
        print(
            f"  {name:7s} {rates[name]:7.1f} tokens/s   time to first token {ttft_ms:6.1f} ms"
            f"   tokens per run {sorted(tokens)}"
        )
    ratio = rates["engine"] / rates["raw"]
    print(f"  engine/raw tokens/s ratio: {ratio:.3f}   per round: {per_round(results, 'engine')}")
    print(f"  control: raw/raw, the machine's noise alone, per round: {per_round(results, 'control')}")


def per_round(results: dict[str, list[tuple[float, float, int]]], name: str) -> str:
    """Median, worst and best over rounds of `name`'s tokens/s over raw's in the same round."""
    ratios = [
        ((c - 1) / (t - f)) / ((cr - 1) / (tr - fr))
        for (f, t, c), (fr, tr, cr) in zip(results[name], results["raw"], strict=True)
    ]
    return f"median {statistics.median(ratios):.3f}, worst {min(ratios):.3f}, best {max(ratios):.3f}"


if __name__ == "__main__":
    main()
