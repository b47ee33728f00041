"""Text loaders by name: how a model file becomes a `TextEngine`.

Adding a backend means adding an entry here; nothing else compares loader names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import GenerationObserver, TextEngine
from .crossthread import Mailer

log = logging.getLogger(__name__)


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
    flash_attn: bool = True
    mmproj: Path | None = None  # the model's projector: it then reads images
    mmproj_optional: bool = False  # found beside the model: one that does not fit is skipped
    # text-generation-webui's llama.cpp args, with its names (load_args.py)
    ubatch_size: int = 0  # 0: the batch size
    cache_type: str = "fp16"
    rope_freq_base: float = 0.0  # 0: the model's
    compress_pos_emb: float = 1.0  # RoPE frequency scale 1/x
    alpha_value: float = 1.0  # NTK RoPE scaling, when rope_freq_base is 0
    no_mmap: bool = False
    mlock: bool = False
    numa: bool = False
    gpu_layers: int = 0
    model_draft: Path | None = None  # a draft model for speculative decoding
    draft_max: int = 16  # most tokens drafted per step (prompt lookup or the draft model)
    ctx_size_draft: int = 0  # 0: ctx_size

    @property
    def rope(self) -> tuple[float, float]:
        """llama.cpp's (rope_freq_base, rope_freq_scale); 0 means the model's own."""
        base = self.rope_freq_base
        if not base and self.alpha_value > 1:
            base = 10000.0 * self.alpha_value ** (64 / 63)
        scale = 1.0 / self.compress_pos_emb if self.compress_pos_emb > 1 else 0.0
        return base, scale

    @property
    def load_mode(self) -> int:
        """llama.cpp's llama_load_mode: -1 auto (map the file), 0 read it, 2 read and lock it,
        3 map and lock it."""
        if self.no_mmap:
            return 2 if self.mlock else 0
        return 3 if self.mlock else -1


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
    from .llamacpp.library import numa_init
    from .llamacpp.scheduler import ContextOptions

    if options.numa:
        numa_init()
    if options.model_draft is not None:
        log.info(
            "%s: model_draft %s is not run (Hearth drafts by prompt lookup, at most %d tokens a step)",
            name,
            options.model_draft.name,
            options.draft_max,
        )
    rope_freq_base, rope_freq_scale = options.rope
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
        mmproj=options.mmproj,
        mmproj_optional=options.mmproj_optional,
        ubatch_size=options.ubatch_size,
        cache_type=options.cache_type,
        rope_freq_base=rope_freq_base,
        rope_freq_scale=rope_freq_scale,
        gpu_layers=options.gpu_layers,
        load_mode=options.load_mode,
        draft_max=options.draft_max,
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
