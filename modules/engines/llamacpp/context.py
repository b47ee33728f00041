"""The llama.cpp context a scheduler owns: its options, its creation, its KV memory.

One context holds `parallel` sequences of `n_ctx` cells each. What the KV cache costs in
memory depends on the cache type (`cache_type`: fp16, or a quantized type such as q8_0
that stores about half as many bytes per cell); llama.cpp does not report the size, so it
is measured: the state of one sequence holding one token and then two differs by exactly
what one cell of every layer holds (`measure_kv_bytes_per_token`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ...errors import EngineFailure, InvalidRequest
from .batch import Batch
from .drafting import MAX_DRAFT
from .model import LlamaModel

log = logging.getLogger(__name__)

# text-generation-webui's names (fp16, q8_0, q4_0) and llama-server's other choices, by
# llama.cpp's ggml type number. All but fp16 and f32 are quantized in blocks of 32 values.
CACHE_TYPES: dict[str, int] = {
    "fp16": 1,
    "f32": 0,
    "q8_0": 8,
    "q5_1": 7,
    "q5_0": 6,
    "q4_1": 3,
    "q4_0": 2,
    "iq4_nl": 20,
}
UNQUANTIZED = ("fp16", "f32")
QUANT_BLOCK = 32


@dataclass(frozen=True)
class ContextOptions:
    n_ctx: int  # per sequence
    parallel: int
    threads: int
    threads_batch: int
    batch_size: int
    queue_size: int = 64  # requests waiting for a slot before new ones are refused (429)
    request_timeout: float = 0.0  # default seconds per request; 0: no limit
    max_output_tokens: int = 0  # most tokens one request may generate; 0: no limit
    flash_attn: bool = False
    prompt_cache_bytes: int = 256 * 1024 * 1024  # saved prompt states kept in host memory
    draft_max: int = MAX_DRAFT  # prompt-lookup drafting: most tokens guessed per step; 0: off
    mmproj: Path | None = None  # a projector: images in prompts (media.py)
    mmproj_optional: bool = False  # a projector that does not fit is skipped, with a warning
    ubatch_size: int = 0  # tokens per physical step (0: the batch size)
    cache_type: str = "fp16"  # KV cache type (CACHE_TYPES)
    rope_freq_base: float = 0.0  # 0: the model's
    rope_freq_scale: float = 0.0  # 0: the model's (compress_pos_emb x is a scale of 1/x)
    gpu_layers: int = 0  # layers offloaded to a GPU (-1: all); nothing to offload on CPU
    load_mode: int = -1  # llama.cpp's llama_load_mode: -1 auto (mmap), 0 read, 2 mlock, 3 mmap+mlock

    @property
    def uses_flash_attn(self) -> bool:
        """A quantized V cache needs flash attention in llama.cpp: it is then on."""
        return self.flash_attn or self.cache_type not in UNQUANTIZED


@dataclass
class Context:
    """A created context and what the scheduler needs alongside it."""

    ptr: int
    memory: int
    batch: Batch
    cells: int  # sequences x cells per sequence
    kv_bytes_per_token: int = 0

    @property
    def kv_cache_bytes(self) -> int:
        return self.kv_bytes_per_token * self.cells


def head_size(model: LlamaModel) -> int:
    """The size of one attention head's key, from the metadata (or embedding / heads)."""
    arch = model.metadata.get("general.architecture", "")
    for key in (f"{arch}.attention.key_length", f"{arch}.attention.value_length"):
        if key in model.metadata:
            try:
                return int(model.metadata[key])
            except ValueError:
                pass
    heads = model.n_head or 1
    return model.n_embd // heads


def check_cache_type(model: LlamaModel, cache_type: str) -> None:
    """A quantized cache stores heads in blocks of 32 values: refuse what cannot fit, clearly."""
    if cache_type not in CACHE_TYPES:
        raise InvalidRequest(
            f"Unknown cache_type {cache_type!r}; known: {', '.join(CACHE_TYPES)}.", param="args.cache_type"
        )
    size = head_size(model)
    if cache_type not in UNQUANTIZED and size % QUANT_BLOCK:
        raise InvalidRequest(
            f"cache_type {cache_type} stores attention heads in blocks of {QUANT_BLOCK} values, "
            f"but this model's heads have {size}: use fp16 with {model.path.name}.",
            param="args.cache_type",
        )


def open_context(lib, model: LlamaModel, options: ContextOptions, n_ctx: int) -> Context:
    """Create the context: `parallel` sequences of `n_ctx` cells, each its own (not unified)."""
    o = options
    check_cache_type(model, o.cache_type)
    params = lib.llama_context_default_params()
    params.n_ctx = n_ctx * o.parallel
    params.n_batch = max(o.batch_size, o.parallel)
    params.n_ubatch = min(params.n_batch, o.ubatch_size) if o.ubatch_size else params.n_batch
    params.n_seq_max = o.parallel
    params.n_threads = o.threads
    params.n_threads_batch = o.threads_batch
    params.kv_unified = False  # each sequence gets its own n_ctx cells
    # Flash attention (the server's default, --flash-attn): faster generation and a smaller
    # KV cache, and a quantized cache needs it. On a real model neither setting makes a
    # request's text independent of what else runs: llama.cpp's CPU kernels split work
    # by batch shape either way (docs/performance.md, "Batched and alone").
    params.flash_attn_type = 1 if o.uses_flash_attn else 0
    params.type_k = params.type_v = CACHE_TYPES[o.cache_type]
    params.rope_freq_base = o.rope_freq_base
    params.rope_freq_scale = o.rope_freq_scale
    params.no_perf = True
    ptr = lib.llama_init_from_model(model.ptr, params)
    if not ptr:
        raise EngineFailure("llama.cpp could not create a context (out of memory?)")
    context = Context(ptr, lib.llama_get_memory(ptr), Batch(params.n_batch), cells=params.n_ctx)
    try:
        context.kv_bytes_per_token = measure_kv_bytes_per_token(lib, context, model)
    except EngineFailure:
        lib.llama_free(ptr)
        raise
    return context


def measure_kv_bytes_per_token(lib, context: Context, model: LlamaModel) -> int:
    """What one token costs in the KV cache, as llama.cpp stores it: the state of sequence 0
    with two tokens minus its state with one (each cell's K and V rows in every layer, and
    the cell's position and sequence). The sequence is emptied again."""
    token = model.bos if model.bos >= 0 else 0
    probe = Batch(1)
    sizes = []
    try:
        for position in range(2):
            probe.clear()
            probe.add([token], position, 0, "last")
            if lib.llama_decode(context.ptr, probe.as_struct()) != 0:
                raise EngineFailure("llama.cpp could not evaluate a token in a new context.")
            sizes.append(lib.llama_state_seq_get_size(context.ptr, 0))
    finally:
        lib.llama_memory_seq_rm(context.memory, 0, -1, -1)
    return max(0, sizes[1] - sizes[0])
