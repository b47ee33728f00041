"""Importing llama-cpp-python lazily, with a clear error when it is missing."""

from __future__ import annotations

import functools
import os
from types import ModuleType

from ...errors import NotInstalled


@functools.cache
def llama_library() -> ModuleType:
    """The low-level `llama_cpp` bindings, with the backend initialised once per process."""
    # OpenMP threads spin this many times (about 3 ms) before sleeping, at each of the ~600
    # barriers of a decode and between decodes. The app asks for OMP_WAIT_POLICY=PASSIVE
    # (media/runtime.py), which alone would mean no spinning: llama.cpp's second thread
    # would then sleep and be woken at every barrier, and 2 threads ran at half the speed
    # of 1. This is libgomp's own default without a policy, as llama-server runs; shorter
    # spins measured slower (docs/performance.md, "Threads"). Read once, when the library
    # loads.
    os.environ.setdefault("GOMP_SPINCOUNT", "300000")
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise NotInstalled(
            "The llama.cpp engine needs llama-cpp-python: pip install -r requirements/base.txt"
        ) from exc
    llama_cpp.llama_backend_init()
    return llama_cpp


def set_library_logging(verbose: bool) -> None:
    """llama.cpp prints every load detail to stderr unless told otherwise."""
    llama_library()
    from llama_cpp import _logger

    _logger.set_verbose(verbose)


@functools.cache
def numa_init() -> None:
    """Spread threads and memory over the NUMA nodes: once, for the whole process."""
    lib = llama_library()
    lib.llama_numa_init(lib.GGML_NUMA_STRATEGY_DISTRIBUTE)
