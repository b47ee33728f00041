"""The KV cache's type really changes its memory (measured at load), quantized types turn
flash attention on, a model whose heads do not fit a quantized block is refused clearly, and
the RoPE arguments reach the context."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_model import write_tiny_model

from modules.engines.base import GenerationRequest, SamplingParams
from modules.engines.crossthread import make_mailer
from modules.engines.llamacpp.engine import LlamaCppEngine
from modules.engines.llamacpp.scheduler import ContextOptions
from modules.engines.registry import LoadOptions
from modules.errors import InvalidRequest


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory) -> Path:
    """The tiny model with heads of 32 values, which quantized caches store in one block."""
    return write_tiny_model(tmp_path_factory.mktemp("heads") / "tiny-2h.gguf", heads=2)


def engine(path: Path, **overrides) -> LlamaCppEngine:
    options = {"n_ctx": 512, "parallel": 4, "threads": 1, "threads_batch": 1, "batch_size": 64, **overrides}
    return LlamaCppEngine("tiny", path, ContextOptions(**options), make_mailer())


def info_of(path: Path, **overrides):
    eng = engine(path, **overrides)
    try:
        text = eng.generate(GenerationRequest("Hello there", SamplingParams(max_tokens=5))).collect().text
        return eng.info, text
    finally:
        eng.close()


def test_quantized_caches_take_a_half_and_a_quarter_of_fp16(two_heads):
    fp16, _ = info_of(two_heads)
    q8, text8 = info_of(two_heads, cache_type="q8_0")
    q4, text4 = info_of(two_heads, cache_type="q4_0")
    assert fp16.cache_type == "fp16" and not fp16.flash_attn
    assert q8.cache_type == "q8_0" and q8.flash_attn and q4.flash_attn  # needed by llama.cpp
    # 2 layers x (K + V) x 64 values: 512 bytes in fp16, 272 in q8_0, 144 in q4_0 (+ the cell)
    assert fp16.kv_bytes_per_token > 512 and fp16.kv_bytes_per_token - 512 < 64
    assert 0.45 < q8.kv_bytes_per_token / fp16.kv_bytes_per_token < 0.6
    assert 0.2 < q4.kv_bytes_per_token / fp16.kv_bytes_per_token < 0.35
    assert fp16.kv_cache_bytes == fp16.kv_bytes_per_token * 512 * 4  # every cell of every sequence
    assert text8 and text4  # and the model still writes


def test_the_measurement_follows_the_context_size(two_heads):
    small, _ = info_of(two_heads, n_ctx=256, parallel=1)
    large, _ = info_of(two_heads, n_ctx=1024, parallel=2)
    assert small.kv_bytes_per_token == large.kv_bytes_per_token
    assert large.kv_cache_bytes == 8 * small.kv_cache_bytes


def test_heads_that_do_not_fill_a_block_are_refused_clearly(tiny_model_path):
    with pytest.raises(InvalidRequest) as error:
        engine(Path(tiny_model_path), cache_type="q8_0")
    assert "32" in error.value.message and "16" in error.value.message
    assert error.value.param == "args.cache_type"
    info, _ = info_of(Path(tiny_model_path), cache_type="f32")  # unquantized types always fit
    assert info.cache_type == "f32" and info.kv_bytes_per_token > 1000


def test_rope_arguments_change_what_the_model_computes(tiny_model_path):
    def first_tokens(**overrides) -> list[tuple[str, float]]:
        eng = engine(Path(tiny_model_path), **overrides)
        try:
            top = eng.token_logprobs("The same words in the same place " * 6, SamplingParams(), 5, False)
            return [(entry.token, round(entry.logprob, 4)) for entry in top]
        finally:
            eng.close()

    plain = first_tokens()
    assert first_tokens(rope_freq_base=10000.0) == plain  # the model's own base
    assert first_tokens(rope_freq_scale=0.25) != plain
    assert first_tokens(rope_freq_base=500.0) != plain


def test_text_generation_webui_rope_forms():
    assert LoadOptions(1, 1, 1, 1, 1).rope == (0.0, 0.0)  # the model's own
    assert LoadOptions(1, 1, 1, 1, 1, compress_pos_emb=4).rope == (0.0, 0.25)
    base, _ = LoadOptions(1, 1, 1, 1, 1, alpha_value=2).rope
    assert round(base) == round(10000 * 2 ** (64 / 63))
    assert LoadOptions(1, 1, 1, 1, 1, alpha_value=2, rope_freq_base=5e5).rope == (5e5, 0.0)


def test_load_modes():
    assert LoadOptions(1, 1, 1, 1, 1).load_mode == -1
    assert LoadOptions(1, 1, 1, 1, 1, no_mmap=True).load_mode == 0
    assert LoadOptions(1, 1, 1, 1, 1, no_mmap=True, mlock=True).load_mode == 2
    assert LoadOptions(1, 1, 1, 1, 1, mlock=True).load_mode == 3


@pytest.mark.parametrize("load_mode", [0, 2, 3])  # read, read and lock, map and lock
def test_the_model_loads_without_mapping_and_locked(tiny_model_path, load_mode):
    info, text = info_of(Path(tiny_model_path), load_mode=load_mode)
    assert text and info.n_vocab > 300


def test_ubatch_size_reaches_the_context(tiny_model_path):
    from modules.engines.llamacpp.library import llama_library

    eng = engine(Path(tiny_model_path), ubatch_size=16)
    try:
        ctx = eng._scheduler.context.ptr
        assert llama_library().llama_n_ubatch(ctx) == 16 and llama_library().llama_n_batch(ctx) == 64
        assert eng.generate(GenerationRequest("word " * 40, SamplingParams(max_tokens=3))).collect().text
    finally:
        eng.close()
