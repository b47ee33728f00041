"""Plain temperature sampling without llama.cpp's chain (modules/engines/llamacpp/softmax_draw.py):
the softmax distribution, the seed, and last-bit differences in the logits."""

from __future__ import annotations

import numpy as np
import pytest

from modules.engines.base import SamplingParams
from modules.engines.llamacpp.model import LlamaModel
from modules.engines.llamacpp.sampler import SequenceSampler, draws_plainly
from modules.engines.llamacpp.softmax_draw import SoftmaxDraw

# Four distinct tokens, one far below the rest, and 3,000 alike.
LOGITS = np.array([2.0, 1.0, 0.0, -1.0, -40.0] + [-4.0] * 3000, dtype=np.float32)
DRAWS = 40_000


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values.astype(np.float64) - values.max())
    return shifted / shifted.sum()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_each_token_comes_with_its_softmax_probability(temperature):
    draw = SoftmaxDraw(temperature, seed=1, n_vocab=len(LOGITS))
    counts = np.bincount([draw.draw(LOGITS) for _ in range(DRAWS)], minlength=len(LOGITS))
    expected = softmax(LOGITS / np.float32(temperature))
    groups = [(counts[i], expected[i]) for i in range(4)] + [(counts[5:].sum(), expected[5:].sum())]
    for count, p in groups:  # within five standard errors of a binomial count
        assert abs(count - DRAWS * p) <= 5 * np.sqrt(DRAWS * p * (1 - p)), (count, DRAWS * p)
    assert counts[4] == 0  # e^-40 (at T=2: e^-21) of the mass: never in 40,000 draws


def test_a_seed_gives_the_same_tokens_and_another_seed_others():
    def tokens(seed):
        draw = SoftmaxDraw(1.0, seed, len(LOGITS))
        return [draw.draw(LOGITS) for _ in range(200)]

    assert tokens(7) == tokens(7)
    assert tokens(7) != tokens(8)


def test_logits_that_differ_in_the_last_bits_give_the_same_tokens():
    """A sequence batched with others gets logits that differ from its logits alone in the last
    bits; the argmax of noisy scores moves only when its two best scores are that close. (A
    running-sum walk like llama.cpp's `dist` changed 10 of 2,000 tokens with this nudge.)"""
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(49_152) * 3).astype(np.float32)
    nudged = logits + rng.uniform(-1e-5, 1e-5, logits.shape).astype(np.float32)
    alone, batched = SoftmaxDraw(0.8, 5, len(logits)), SoftmaxDraw(0.8, 5, len(logits))
    assert [alone.draw(logits) for _ in range(2000)] == [batched.draw(nudged) for _ in range(2000)]


@pytest.mark.parametrize(
    ("params", "plain"),
    [
        (SamplingParams(temperature=0.8), True),
        (SamplingParams(), True),  # OpenAI's defaults: temperature 1, nothing else
        (SamplingParams(temperature=0), False),  # greedy: the argmax
        (SamplingParams(temperature=0.8, top_k=40), False),
        (SamplingParams(temperature=0.8, top_p=0.95), False),
        (SamplingParams(temperature=0.8, min_p=0.05), False),
        (SamplingParams(temperature=0.8, typical_p=0.9), False),
        (SamplingParams(temperature=0.8, repetition_penalty=1.1), False),
        (SamplingParams(temperature=0.8, presence_penalty=0.5), False),
        (SamplingParams(temperature=0.8, frequency_penalty=0.5), False),
        (SamplingParams(temperature=0.8, logit_bias={5: -100}), False),
        (SamplingParams(temperature=0.8, grammar='root ::= "a"'), False),
        (SamplingParams(temperature=0.8, grammar=""), True),  # no grammar, as the chain reads it
        (SamplingParams(temperature=0.8, json_schema={"type": "object"}), False),
    ],
)
def test_only_plain_temperature_sampling_leaves_the_chain(params, plain):
    assert draws_plainly(params) is plain


def test_the_sampler_builds_a_chain_only_when_it_needs_one(tiny_model_path):
    model = LlamaModel(tiny_model_path)
    try:
        plain = SequenceSampler(model, SamplingParams(temperature=0.8, seed=2**64 - 1), [1, 2])
        filtered = SequenceSampler(model, SamplingParams(temperature=0.8, top_p=0.9, seed=3), [1, 2])
        assert plain.chain is None and filtered.chain is not None
        plain.free()
        filtered.free()
    finally:
        model.close()
