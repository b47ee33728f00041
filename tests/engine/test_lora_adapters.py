"""LoRA adapters on the tiny model with a generated adapter: the logits move with the scale
and come back when it is taken off; per-request scales; requests under different adapters
batched give what they give alone; cached prefixes are never reused across adapters."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from tiny_lora import write_tiny_lora

from modules.engines.base import GenerationRequest, SamplingParams
from modules.engines.crossthread import make_mailer
from modules.engines.llamacpp import scheduler as scheduler_module
from modules.engines.llamacpp.engine import LlamaCppEngine
from modules.engines.llamacpp.scheduler import ContextOptions
from modules.errors import InvalidRequest

PROMPT = "Hello there, how are you"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    return write_tiny_lora(tmp_path_factory.mktemp("loras") / "style.gguf")


@pytest.fixture
def engine(tiny_model_path):
    options = ContextOptions(n_ctx=512, parallel=4, threads=1, threads_batch=1, batch_size=64)
    eng = LlamaCppEngine("tiny", Path(tiny_model_path), options, make_mailer())
    yield eng
    eng.close()


def distribution(engine, **params) -> dict[str, float]:
    top = engine.token_logprobs(PROMPT, SamplingParams(**params), 20, False)
    return {entry.token: entry.logprob for entry in top}


def test_the_logits_move_with_the_scale_and_return_when_it_is_taken_off(engine, adapter):
    base = distribution(engine)
    engine.set_adapters([("style", adapter, 1.0)])
    full = distribution(engine)
    engine.set_adapters([("style", adapter, 0.5)])
    half = distribution(engine)
    engine.set_adapters([])
    after = distribution(engine)
    assert after == base  # exactly: nothing of the adapter is left
    assert full != base and half not in (base, full)
    best = max(full, key=full.get)
    # the token the adapter favours gains more at scale 1 than at 0.5
    assert full[best] > half.get(best, -1e9) > base.get(best, -1e9)
    assert [a.name for a in engine.adapters] == []


def test_a_request_chooses_its_own_scales(engine, adapter):
    base = distribution(engine)
    engine.set_adapters([("style", adapter, 0.0)])  # loaded, switched off
    assert distribution(engine) == base
    on = distribution(engine, lora=((0, 1.0),))
    engine.set_adapters([("style", adapter, 1.0)])
    assert distribution(engine) == on  # the same as the list's own scale 1
    assert distribution(engine, lora=((0, 0.0),)) == base
    with pytest.raises(InvalidRequest) as error:
        engine.generate(GenerationRequest(PROMPT, SamplingParams(lora=((3, 1.0),))))
    assert error.value.param == "lora.0.id" and "style" in error.value.message


def test_requests_under_different_adapters_batched_give_what_they_give_alone(engine, adapter):
    engine.set_adapters([("style", adapter, 0.0)])
    requests = [
        GenerationRequest(
            f"Story {i}: once upon a time",
            SamplingParams(max_tokens=40, temperature=0.9, seed=i, lora=((0, [0.0, 0.5, 1.0][i % 3]),)),
        )
        for i in range(6)
    ]
    alone = [engine.generate(request).collect().text for request in requests]
    together: list = [None] * len(requests)

    def run(i: int) -> None:
        together[i] = engine.generate(requests[i]).collect().text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert together == alone
    assert len(set(alone)) == len(alone)


def test_different_adapters_take_turns_instead_of_waiting_for_each_other(engine, adapter, monkeypatch):
    lib = scheduler_module.llama_library()
    steps: list[set[int]] = []  # the sequences of each decode
    real_decode = lib.llama_decode

    def recording_decode(ctx, batch):
        steps.append({batch.seq_id[i][0] for i in range(batch.n_tokens)})
        return real_decode(ctx, batch)

    monkeypatch.setattr(lib, "llama_decode", recording_decode)
    engine.set_adapters([("style", adapter, 0.0)])
    params = {"max_tokens": 200, "speculative": False}
    generations = [
        engine.generate(GenerationRequest("A long story", SamplingParams(**params))),
        engine.generate(GenerationRequest("Another long story", SamplingParams(**params, lora=((0, 1.0),)))),
    ]
    assert [g.collect().usage.completion_tokens for g in generations] == [200, 200]
    assert all(len(step) == 1 for step in steps)  # never one step for both adapters
    order = [next(iter(step)) for step in steps]
    turns = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert turns >= 200  # they alternated step by step, neither waited for the other to end


def test_a_cached_prefix_is_reused_only_under_the_adapters_that_computed_it(tiny_model_path, adapter):
    options = ContextOptions(n_ctx=512, parallel=1, threads=1, threads_batch=1, batch_size=64)
    engine = LlamaCppEngine("tiny", Path(tiny_model_path), options, make_mailer())
    fresh = LlamaCppEngine("tiny", Path(tiny_model_path), options, make_mailer())
    try:
        for eng in (engine, fresh):
            eng.set_adapters([("style", adapter, 0.0)])
        system = "System: you are a careful assistant with a long prompt. " * 8
        greedy = {"max_tokens": 8, "temperature": 0}
        plain = engine.generate(GenerationRequest(system + "Q1", SamplingParams(**greedy))).collect()
        assert plain.usage.cached_tokens == 0
        styled = engine.generate(
            GenerationRequest(system + "Q2", SamplingParams(**greedy, lora=((0, 1.0),)))
        ).collect()
        assert styled.usage.cached_tokens == 0  # the same prefix, but computed without the adapter
        expected = fresh.generate(
            GenerationRequest(system + "Q2", SamplingParams(**greedy, lora=((0, 1.0),)))
        ).collect()
        assert styled.text == expected.text
        again = engine.generate(GenerationRequest(system + "Q3", SamplingParams(**greedy))).collect()
        assert again.usage.cached_tokens > 64  # the plain prefix came back from the saved state
    finally:
        engine.close()
        fresh.close()


def test_a_file_that_is_not_an_adapter_is_refused(engine, tmp_path, tiny_model_path):
    with pytest.raises(InvalidRequest, match="could not be loaded"):
        engine.set_adapters([("model", Path(tiny_model_path), 1.0)])
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(InvalidRequest):
        engine.set_adapters([("junk", tmp_path / "junk.gguf", 1.0)])
    assert engine.generate(GenerationRequest(PROMPT, SamplingParams(max_tokens=3))).collect().text
