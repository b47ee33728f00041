"""Native thread settings for the media models, applied where they are first imported.

Measured on the project's 2-core machine (docs/media.md): torch with the default OpenMP
wait policy busy-waits, and small ops ran 10-50x slower as soon as the other core was
busy. OMP_WAIT_POLICY=PASSIVE must be set before torch (or CTranslate2) loads its OpenMP
runtime, so it is set here, on the worker thread, right before the first heavy import,
never at import time of this module. With PASSIVE, 2 threads beat 1 at batch 32 both on
a quiet machine and with the other core busy, so the default is one thread per core.
"""

from __future__ import annotations

import os


def default_threads(configured: int) -> int:
    return configured if configured > 0 else max(1, os.cpu_count() or 1)


def prepare_openmp() -> None:
    """Call before importing torch or CTranslate2 for the first time; a no-op afterwards."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
