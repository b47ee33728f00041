"""Importing llama-cpp-python lazily, with a clear error when it is missing."""

from __future__ import annotations

import functools
import os
from types import ModuleType

from ...errors import NotInstalled


@functools.cache
def llama_library() -> ModuleType:
    """The low-level `llama_cpp` bindings, with the backend initialised once per process."""
    # OpenMP threads spin this many times before sleeping; libgomp's default of 300,000
    # burns a core a waiting thread needs whenever anything else runs. Read once, when
    # the library loads.
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
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
