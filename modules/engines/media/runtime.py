"""Native thread settings for the media models.

Measured on the project's 2-core machine (docs/media.md): torch with the default OpenMP
wait policy busy-waits, and small ops ran 10-50x slower as soon as the other core was
busy. OpenMP reads OMP_WAIT_POLICY once, when its runtime loads, and there is one runtime
per process: torch's CPU wheel and llama.cpp both use the system libgomp, and llama.cpp
loads it first, while the app is built. So `prefer_passive_openmp` runs at the start of
`build_services` (a wait in the server of 0.4-1 s per one-sentence embedding under load
became 30-45 ms), and again before every heavy import for the code that runs without the
app (benchmarks). The text engine's speed did not change measurably (it generates on 1
thread by default).

Threads, measured at batch 32 on the 2-core machine (sentences/s): on a quiet machine 2
torch threads beat 1 (raw encode 205-290 against 174-187); with the other core busy, 1
beats 2 (raw 110 against 89; through the server 114 against 73, where 2 threads also made
a one-sentence request 62 ms instead of 20). A server shares its cores with the text
engine and whatever else runs, so the default is half the cores, at least 1: on 2 cores,
the text engine's own robust choice for generation.
"""

from __future__ import annotations

import os


def default_threads(configured: int) -> int:
    return configured if configured > 0 else max(1, (os.cpu_count() or 2) // 2)


def prefer_passive_openmp() -> None:
    """OpenMP threads sleep when idle instead of spinning, unless the user chose otherwise.

    Effective only before the process first loads an OpenMP runtime (llama.cpp, torch).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def prepare_openmp() -> None:
    """Call before importing torch or CTranslate2 for the first time; a no-op afterwards."""
    prefer_passive_openmp()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # No progress bars in a server's log (tqdm also starts a monitor thread per process).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers loads weights on a thread pool by default. On a model's worker thread in
    # the gevent server those "threads" are greenlets that only run when the worker yields,
    # so the pool buys nothing there and can outlive the model (see worker.py).
    os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")


def import_torch(threads: int):
    """torch, with its intra-op thread count set for the calling (worker) thread."""
    prepare_openmp()
    import torch

    # set_num_threads is process-wide for torch's pool, but OpenMP reads it per calling
    # thread: calling it on the worker thread that runs the model is what makes it stick.
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch


def onnx_session_options(threads: int):
    """onnxruntime options: a fixed pool that sleeps instead of spinning when idle."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
