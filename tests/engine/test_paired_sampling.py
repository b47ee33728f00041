"""Sampling a step's sequences on two threads gives each sequence the token it gets when
sampled in place, in the step's order (modules/engines/llamacpp/paired_sampling.py)."""

from __future__ import annotations

import threading

import pytest

from modules.engines.base import SamplingParams
from modules.engines.llamacpp.batch import Batch
from modules.engines.llamacpp.context import ContextOptions, open_context
from modules.engines.llamacpp.library import llama_library
from modules.engines.llamacpp.model import LlamaModel
from modules.engines.llamacpp.paired_sampling import PairedSampling
from modules.engines.llamacpp.sampler import SequenceSampler

PARAMS = [
    SamplingParams(temperature=0.9, seed=1),
    SamplingParams(temperature=1.2, seed=2, top_k=20),
    SamplingParams(temperature=0.0),
    SamplingParams(temperature=0.7, seed=3, top_p=0.9, repetition_penalty=1.3),
    SamplingParams(temperature=1.0, seed=4, grammar="root ::= [0-9]+"),
]


@pytest.fixture
def decoded(tiny_model_path):
    """A context after one decode of five sequences' prompts; the batch index of each
    sequence's last row."""
    lib = llama_library()
    model = LlamaModel(tiny_model_path)
    context = open_context(
        lib, model, ContextOptions(n_ctx=128, parallel=5, threads=1, threads_batch=1, batch_size=128), 128
    )
    batch = Batch(128)
    prompts = [model.tokenize(f"Sequence {i} begins with these words") for i in range(len(PARAMS))]
    rows = [batch.add(prompt, 0, seq, "last") + len(prompt) - 1 for seq, prompt in enumerate(prompts)]
    assert lib.llama_decode(context.ptr, batch.as_struct()) == 0
    yield model, context.ptr, prompts, rows
    lib.llama_free(context.ptr)
    model.close()


def test_two_threads_sample_what_one_thread_samples(decoded):
    model, ctx, prompts, rows = decoded
    in_place = [SequenceSampler(model, p, prompt) for p, prompt in zip(PARAMS, prompts, strict=True)]
    paired = [SequenceSampler(model, p, prompt) for p, prompt in zip(PARAMS, prompts, strict=True)]
    threads = []
    for sampler in paired:  # note which thread samples each sequence
        original = sampler.sample
        sampler.sample = lambda c, i, original=original: (
            threads.append(threading.get_ident()),
            original(c, i),
        )[1]
    sampling = PairedSampling()
    try:
        for _ in range(3):  # the same chains again: their state (seed, penalties, grammar) moves on alike
            expected = [sampler.sample(ctx, row) for sampler, row in zip(in_place, rows, strict=True)]
            got = sampling.sample(ctx, list(zip(paired, rows, strict=True)))
            assert got == expected
    finally:
        sampling.close()
        for sampler in in_place + paired:
            sampler.free()
    assert len(set(threads)) == 2  # half of them on the helper thread
    assert threads.count(threading.get_ident()) == 3 * 3  # the other half (3 of 5) here


def test_one_sequence_is_sampled_in_place(decoded):
    model, ctx, prompts, rows = decoded
    sampler = SequenceSampler(model, PARAMS[0], prompts[0])
    threads = []
    original = sampler.sample
    sampler.sample = lambda c, i: (threads.append(threading.get_ident()), original(c, i))[1]
    sampling = PairedSampling()
    try:
        assert len(sampling.sample(ctx, [(sampler, rows[0])])) == 1
        assert sampling.sample(ctx, []) == []
    finally:
        sampling.close()
        sampler.free()
    assert threads == [threading.get_ident()]
