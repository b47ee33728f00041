"""LocalDocs at 1,000 files: how fast a folder is indexed, and how long a search takes.

Makes 1,000 small text and Markdown files (a few paragraphs each) in a temporary folder,
indexes them with the real embedding model (all-MiniLM-L6-v2 on the CPU, through the media
engine's worker, as the server runs it; `--own` uses LocalDocs' fallback thread), then reports:

- the first index run: files/s and chunks/s (the model's load is timed apart);
- a second run with nothing changed, and one after 10 files changed;
- search latency (embedding the question + scoring every chunk + reading the best ones),
  p50/p95 over `--queries` questions, and the scoring alone.

    python bench/bench_localdocs.py [--files 1000] [--queries 200] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from extensions.localdocs.embedding import MediaEmbedder, OwnEmbedder
from extensions.localdocs.library import LocalDocs, Options
from extensions.localdocs.store import Store
from modules.engines.crossthread import ThreadMailer
from modules.engines.media.manager import MediaConfig, MediaModels
from modules.settings import load_settings

TOPICS = [
    "garden",
    "invoice",
    "meeting",
    "recipe",
    "holiday",
    "car",
    "dentist",
    "budget",
    "school",
    "project",
    "server",
    "concert",
    "library",
    "train",
    "insurance",
    "painting",
    "bicycle",
    "tax",
]
WORDS = [
    "alpha",
    "river",
    "stone",
    "paper",
    "window",
    "green",
    "quiet",
    "morning",
    "number",
    "table",
    "letter",
    "yellow",
    "market",
    "station",
    "winter",
    "friend",
    "city",
    "music",
    "silver",
    "coffee",
    "garden",
    "orange",
    "forest",
    "cloud",
    "bridge",
]


def make_files(folder: Path, count: int, rng: random.Random) -> None:
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        paragraphs = [
            f"# Note {i} about the {topic}",
            f"The {topic} note number {i} says the deadline is day {rng.randint(1, 28)}.",
        ]
        for _ in range(rng.randint(1, 3)):
            paragraphs.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + ".")
        sub = folder / topic
        sub.mkdir(exist_ok=True)
        (sub / f"note-{i:04d}.{'md' if i % 2 else 'txt'}").write_text("\n\n".join(paragraphs))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--own", action="store_true", help="LocalDocs' own thread, not the media engine")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "docs"
        folder.mkdir()
        make_files(folder, args.files, rng)
        media = None
        if args.own:
            embedder = OwnEmbedder(ThreadMailer())
        else:
            settings = load_settings(["--user-data-dir", str(root / "user_data")], {})
            media = MediaModels(MediaConfig.from_settings(settings), ThreadMailer())
            embedder = MediaEmbedder(media, "")
        started = time.perf_counter()
        embedder.run(lambda embed: embed(["warm up"]))
        load_s = time.perf_counter() - started
        docs = LocalDocs(
            Store(root / "user_data" / "localdocs.sqlite3"),
            embedder,
            Options(),
            private_dirs=[root / "user_data"],
        )
        docs.create("bench", [str(folder)])

        def index() -> tuple[float, dict]:
            began = time.perf_counter()
            run = docs.start_index("bench")
            run.wait()
            assert run.state == "done", run.error
            return time.perf_counter() - began, run.to_json()

        first_s, first = index()
        chunks = docs.list()[0]["chunks"]
        same_s, _ = index()
        for path in sorted(folder.rglob("note-000*"))[:10]:
            path.write_text(path.read_text() + "\n\nAn added line about the changed deadline.")
        changed_s, changed = index()

        questions = [
            f"When is the deadline of the {rng.choice(TOPICS)} note {rng.randrange(args.files)}?"
            for _ in range(args.queries)
        ]
        latencies = []
        for question in questions:
            began = time.perf_counter()
            docs.search(["bench"], question, top_k=3)
            latencies.append((time.perf_counter() - began) * 1000)
        embed_only = []
        for question in questions[:50]:
            began = time.perf_counter()
            embedder.run(lambda embed, q=question: embed([q]))
            embed_only.append((time.perf_counter() - began) * 1000)
        docs.close()
        if media is not None:
            media.close()

    rows = [
        ("files", f"{args.files} ({chunks} chunks)"),
        ("embedding model load", f"{load_s:.1f} s"),
        (
            "first index",
            f"{first_s:.1f} s: {first['files_indexed'] / first_s:.0f} files/s, "
            f"{chunks / first_s:.0f} chunks/s",
        ),
        ("re-index, nothing changed", f"{same_s * 1000:.0f} ms"),
        ("re-index, 10 files changed", f"{changed_s * 1000:.0f} ms ({changed['files_indexed']} embedded)"),
        ("search p50 / p95", f"{statistics.median(latencies):.1f} / {percentile(latencies, 0.95):.1f} ms"),
        ("of which embedding the question (p50)", f"{statistics.median(embed_only):.1f} ms"),
        ("embedder", "LocalDocs' own thread" if args.own else "the media engine's worker"),
        ("cores", str(os.cpu_count())),
    ]
    if args.markdown:
        print("| measure | value |\n| --- | --- |")
        for name, value in rows:
            print(f"| {name} | {value} |")
    else:
        for name, value in rows:
            print(f"{name:40} {value}")


if __name__ == "__main__":
    main()
