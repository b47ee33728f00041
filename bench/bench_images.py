"""Image input: the time to encode one image, and what it costs the text streams meanwhile.

Hearth serves the default model (SmolLM2-135M-Instruct) with a generated projector the size
of a real small vision encoder (SigLIP-B-like: 12 layers, 768 wide, 384-pixel images in
16-pixel patches; random weights: the answers are noise, the work is real). Each round:

- an image request alone: its time to first token, against the same request without the
  image (the difference is encoding and decoding the image);
- three text streams alone, then the same three while image requests keep arriving: their
  tokens/s in both (the image's encoding runs on the projector's own thread).

    .venv/bin/python bench/bench_images.py --rounds 5
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402
from servers import make_user_data, start_server  # noqa: E402
from tiny_projector import write_tiny_projector  # noqa: E402

SMOLLM2_EMBD = 576


def image_url(seed: int) -> str:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (384, 384, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def chat(base: str, content, tokens: int, stream: bool = False) -> tuple[float, float, int]:
    """(time to first token, seconds after it, tokens) of one request."""
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": tokens, "temperature": 0.8}
    body |= {"stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}}
    started, first, count = time.perf_counter(), None, 0
    with requests.post(f"{base}/v1/chat/completions", json=body, stream=True, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if b'"content":"' in line and b'"content":""' not in line:
                first = first or time.perf_counter()
            if b'"usage"' in line and b'"choices":[]' in line:
                count = int(line.split(b'"completion_tokens":')[1].split(b",")[0])
    return first - started, time.perf_counter() - first, count


def streams_rate(base: str, n: int, tokens: int) -> float:
    rates: list[float] = []

    def one(i: int) -> None:
        _, seconds, count = chat(base, f"Write a long story about {i}.", tokens)
        rates.append((count - 1) / seconds)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        projector = write_tiny_projector(
            tmp / "mmproj-bench.gguf", SMOLLM2_EMBD, image_size=384, patch=16, n_embd=768,
            n_ff=3072, n_layer=12, n_head=12, scale_factor=4,
        )  # fmt: skip
        argv = [
            "--api", "--nowebui", "--user-data-dir", str(make_user_data(tmp / "user_data")),
            "--model-dir", str(tmp / "none"), "--mmproj", str(projector), "--threads", "1",
            "--threads-batch", "2", "--ctx-size", "2048",
        ]  # fmt: skip
        server = start_server(argv, log_path=tmp / "server.log")
        base = server.api_base
        question = "What is in this picture?"
        encode, alone, busy = [], [], []
        try:
            chat(
                base,
                [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": image_url(0)}},
                ],
                1,
            )
            for round_ in range(args.rounds):
                with_image = [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": image_url(100 + round_)}},
                ]
                text_first, _, _ = chat(base, question + f" ({round_})", 1)
                image_first, _, _ = chat(base, with_image, 1)
                encode.append((image_first - text_first) * 1000)
                alone.append(streams_rate(base, 3, 96))
                stop = threading.Event()

                def images(stop: threading.Event = stop, round_: int = round_) -> None:
                    i = 0
                    while not stop.is_set():
                        content = [
                            {"type": "text", "text": question},
                            {"type": "image_url", "image_url": {"url": image_url(1000 * round_ + i)}},
                        ]
                        chat(base, content, 1)
                        i += 1

                feeder = threading.Thread(target=images)
                feeder.start()
                busy.append(streams_rate(base, 3, 96))
                stop.set()
                feeder.join()
        finally:
            server.stop()
    ratios = [b / a for a, b in zip(alone, busy, strict=True)]
    print(
        f"SmolLM2-135M-Instruct + a SigLIP-B-sized projector (384 px, 36 image tokens), {args.rounds} rounds"
    )
    print(
        f"  image encode + decode (time to first token, image - text): "
        f"median {statistics.median(encode):.0f} ms"
    )
    print(
        f"  3 text streams, tok/s: alone {statistics.median(alone):.1f}, while images keep coming "
        f"{statistics.median(busy):.1f}; kept {statistics.median(ratios):.0%} "
        f"(min {min(ratios):.0%}, max {max(ratios):.0%})"
    )


if __name__ == "__main__":
    main()
