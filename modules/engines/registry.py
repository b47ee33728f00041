"""Text loaders by name: how a model file becomes a `TextEngine`.

Adding a backend means adding an entry here; nothing else compares loader names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import GenerationObserver, TextEngine
from .crossthread import Mailer


@dataclass(frozen=True)
class LoadOptions:
    ctx_size: int
    threads: int
    threads_batch: int
    batch_size: int
    parallel: int
    queue_size: int = 64
    request_timeout: float = 0.0  # seconds; 0: no limit
    max_output_tokens: int = 0  # most tokens one request may generate; 0: no limit
    prompt_cache_mb: int = 256
    flash_attn: bool = False


@dataclass(frozen=True)
class Loader:
    name: str
    suffixes: tuple[str, ...]  # model files this loader can open
    load: Callable[[str, Path | None, LoadOptions, Mailer, GenerationObserver | None], TextEngine]
    # Whether a loaded model takes this machine's memory: only those count against the
    # models kept loaded at once (a model on upstream servers takes none here).
    resident: bool = True


def _load_llamacpp(
    name: str, path: Path, options: LoadOptions, mailer: Mailer, observer: GenerationObserver | None
) -> TextEngine:
    from .llamacpp.engine import LlamaCppEngine
    from .llamacpp.scheduler import ContextOptions

    context = ContextOptions(
        n_ctx=options.ctx_size,
        parallel=options.parallel,
        threads=options.threads,
        threads_batch=options.threads_batch,
        batch_size=options.batch_size,
        queue_size=options.queue_size,
        request_timeout=options.request_timeout,
        max_output_tokens=options.max_output_tokens,
        prompt_cache_bytes=options.prompt_cache_mb * 1024 * 1024,
        flash_attn=options.flash_attn,
    )
    return LlamaCppEngine(name, path, context, mailer, observer)


def _remote_loader(fleet) -> Loader:
    def load(
        name: str,
        path: Path | None,
        options: LoadOptions,
        mailer: Mailer,
        observer: GenerationObserver | None,
    ) -> TextEngine:
        return fleet.engine(name, options, observer)

    return Loader(REMOTE, (), load, resident=False)


REMOTE = "remote"


def default_loaders(fleet=None) -> dict[str, Loader]:
    """The loaders; with a fleet of upstream servers (modules/engines/remote), `remote` too."""
    loaders = [Loader("llama.cpp", (".gguf",), _load_llamacpp)]
    if fleet is not None:
        loaders.append(_remote_loader(fleet))
    return {loader.name: loader for loader in loaders}
