"""Tokenizing request text never takes minutes: llama.cpp's SentencePiece tokenizer is
quadratic on long runs it spells byte by byte (the fuzz tests found 1 MB of NUL characters
taking a minute on the event loop), so a text is measured in pieces against the limit that
matters (the context) before it is tokenized whole."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from modules.engines.base import GenerationRequest, SamplingParams
from modules.engines.crossthread import make_mailer
from modules.engines.llamacpp.engine import LlamaCppEngine
from modules.engines.llamacpp.model import chunks
from modules.engines.llamacpp.scheduler import ContextOptions
from modules.errors import ContextOverflow, TooManyTokens

MEGABYTE = 1 << 20


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    options = ContextOptions(n_ctx=512, parallel=1, threads=1, threads_batch=1, batch_size=64)
    eng = LlamaCppEngine("tiny", Path(tiny_model_path), options, make_mailer())
    yield eng
    eng.close()


@pytest.mark.parametrize("unit", ["\x00", "\u202e", "x", "word "])
def test_a_megabyte_is_refused_in_milliseconds(engine, unit):
    text = unit * (MEGABYTE // len(unit))
    started = time.monotonic()
    with pytest.raises(TooManyTokens) as caught:
        engine.tokenize(text, limit=512)
    assert caught.value.at_least > 512
    assert engine.count_tokens(text) > 512  # a lower bound: it fits nowhere
    with pytest.raises(ContextOverflow):
        engine.generate(GenerationRequest(text, SamplingParams(max_tokens=1)))
    assert time.monotonic() - started < 2


def test_text_within_the_limit_is_tokenized_exactly_as_before(engine):
    rng = random.Random(7)
    words = ["alpha", "beta", "γάμμα", "\u202e", "\x00", "🙂", "the", "\n", "  "]
    text = "".join(rng.choice(words) for _ in range(12_000))  # several pieces long
    whole = engine.tokenize(text)
    assert engine.tokenize(text, limit=len(whole)) == whole
    with pytest.raises(TooManyTokens):
        engine.tokenize(text, limit=len(whole) - 1)
    assert len(list(chunks(text))) > 3 and "".join(chunks(text)) == text


def test_a_counted_text_at_the_context_is_exact(engine):
    text = "hello " * 400
    assert engine.count_tokens(text) == len(engine.tokenize(text, add_bos=False))
