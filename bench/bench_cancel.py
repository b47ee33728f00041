"""How fast a dropped stream frees its slot, for each chat protocol, interleaved round by round.

Starts Hearth on the tiny test model (or --model), streams a long generation through chat
completions, the Responses API and Anthropic Messages, drops the connection after the first
text event, and times until /v1/internal/model/info shows no busy slot.

    .venv/bin/python bench/bench_cancel.py --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import make_user_data, start_server, tiny_args  # noqa: E402
from tiny_model import write_tiny_model  # noqa: E402

MESSAGES = [{"role": "user", "content": "Tell me a long story."}]
PROTOCOLS = {
    "chat completions": (
        "/v1/chat/completions",
        {"messages": MESSAGES, "max_tokens": 2000, "stream": True, "ignore_eos": True},
        b'"content"',
    ),
    "responses": (
        "/v1/responses",
        {"input": MESSAGES, "max_output_tokens": 2000, "stream": True, "ignore_eos": True},
        b"output_text.delta",
    ),
    "messages": (
        "/v1/messages",
        {"model": "tiny", "messages": MESSAGES, "max_tokens": 2000, "stream": True, "ignore_eos": True},
        b"text_delta",
    ),
}


def busy(base: str) -> int:
    return requests.get(f"{base}/v1/internal/model/info", timeout=10).json()["stats"]["busy_slots"]


def drop_and_time(base: str, path: str, body: dict, marker: bytes) -> float:
    with requests.post(base + path, json=body, stream=True, timeout=60) as response:
        for line in response.iter_lines():
            if marker in line:
                break
    dropped = time.perf_counter()
    while busy(base):
        if time.perf_counter() - dropped > 10:
            raise RuntimeError(f"{path}: the slot was still busy 10 s after the drop")
        time.sleep(0.002)
    return (time.perf_counter() - dropped) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "models").mkdir()
        write_tiny_model(tmp / "models" / "tiny.gguf")
        argv = [*tiny_args(make_user_data(tmp / "user_data"), tmp / "models", ctx_size=4096), "--api"]
        server = start_server(argv, log_path=tmp / "server.log")
        try:
            times: dict[str, list[float]] = {name: [] for name in PROTOCOLS}
            for _ in range(args.rounds):
                for name, (path, body, marker) in PROTOCOLS.items():
                    times[name].append(drop_and_time(server.api_base, path, body, marker))
        finally:
            server.stop()
    print(f"dropped stream -> slot free, tiny model, {args.rounds} interleaved rounds (ms)")
    for name, values in times.items():
        print(
            f"  {name:18} median {statistics.median(values):6.1f}   "
            f"min {min(values):6.1f}   max {max(values):6.1f}"
        )


if __name__ == "__main__":
    main()
