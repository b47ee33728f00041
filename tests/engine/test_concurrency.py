"""Continuous batching on the tiny model: same text as alone, queue limits, timeouts,
cancellation of one request among many, and prefix reuse across slots and saved states."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from modules.engines.base import FINISH_CANCELLED, FINISH_LENGTH, GenerationRequest, SamplingParams
from modules.engines.crossthread import make_mailer
from modules.engines.llamacpp import scheduler as scheduler_module
from modules.engines.llamacpp.engine import LlamaCppEngine
from modules.engines.llamacpp.scheduler import ContextOptions
from modules.errors import Overloaded, Unavailable


def make_engine(path, **overrides) -> LlamaCppEngine:
    options = dict(n_ctx=512, parallel=4, threads=1, threads_batch=1, batch_size=64)
    options.update(overrides)
    return LlamaCppEngine("tiny", Path(path), ContextOptions(**options), make_mailer())


@pytest.fixture
def engine(tiny_model_path):
    eng = make_engine(tiny_model_path)
    yield eng
    eng.close()


def requests_for(n: int, max_tokens: int = 40) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            f"Story {i}: once upon a time there was",
            SamplingParams(max_tokens=max_tokens, temperature=0.9, seed=100 + i),
        )
        for i in range(n)
    ]


def run_concurrently(engine, requests) -> list:
    results = [None] * len(requests)

    def go(i):
        results[i] = engine.generate(requests[i]).collect()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_requests_produce_what_they_produce_alone(tiny_model_path, engine):
    requests = requests_for(7)  # more than the 4 slots: some wait, then join between steps
    alone_engine = make_engine(tiny_model_path, parallel=1)
    try:
        alone = [alone_engine.generate(r).collect().text for r in requests]
    finally:
        alone_engine.close()
    together = run_concurrently(engine, requests)
    assert [c.text for c in together] == alone
    assert all(c.finish_reason == FINISH_LENGTH for c in together)


def test_each_step_decodes_all_active_sequences_in_one_call(engine, monkeypatch):
    lib = scheduler_module.llama_library()
    calls = []
    real_decode = lib.llama_decode

    def counting_decode(ctx, batch):
        calls.append(batch.n_tokens)
        return real_decode(ctx, batch)

    monkeypatch.setattr(lib, "llama_decode", counting_decode)
    generations = [engine.generate(r) for r in requests_for(4, max_tokens=60)]  # all queued first
    results = [g.collect() for g in generations]
    generated = sum(c.usage.completion_tokens for c in results)
    assert generated == 240
    assert len(calls) < generated / 2, "sequences must share decode calls"
    assert max(calls) > 3  # some steps carried a token of every sequence


def test_a_long_prompt_is_evaluated_in_chunks_while_streams_keep_flowing(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=2, batch_size=64, n_ctx=512)
    try:
        running = engine.generate(
            GenerationRequest("A running story", SamplingParams(max_tokens=400, temperature=0))
        )
        next(running)
        stamps: list[float] = []
        collector = threading.Thread(target=lambda: stamps.extend(time.monotonic() for _ in running))
        collector.start()
        long_prompt = "word " * 380
        submitted = time.monotonic()
        newcomer = engine.generate(GenerationRequest(long_prompt, SamplingParams(max_tokens=1)))
        first = next(newcomer)
        first_at = time.monotonic()
        newcomer.close()
        collector.join(timeout=60)
        during = [t for t in stamps if submitted <= t <= first_at]
        assert first.text or first.finish_reason
        assert len(during) >= 3, "the running stream must get tokens while the prompt is evaluated"
    finally:
        engine.close()


def test_cancelling_one_request_leaves_the_others_untouched(engine):
    requests = requests_for(3, max_tokens=80)
    expected = [engine.generate(r).collect().text for r in requests]
    victim = engine.generate(GenerationRequest("victim", SamplingParams(max_tokens=400)))
    next(victim)
    results = [None] * 3

    def go(i):
        results[i] = engine.generate(requests[i]).collect().text

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    assert engine.cancel(victim.request_id)
    assert list(victim)[-1].finish_reason == FINISH_CANCELLED
    for thread in threads:
        thread.join(timeout=60)
    assert results == expected


def test_a_full_queue_refuses_with_retry_after_and_recovers(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=1, queue_size=2)
    try:
        running = [engine.generate(GenerationRequest("busy", SamplingParams(max_tokens=300)))]
        next(running[0])
        running += [
            engine.generate(GenerationRequest("wait", SamplingParams(max_tokens=5))) for _ in range(2)
        ]
        with pytest.raises(Overloaded) as refused:
            engine.generate(GenerationRequest("one too many", SamplingParams(max_tokens=5)))
        assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
        for generation in running:
            generation.close()
        deadline = time.monotonic() + 5
        while engine.stats().queued or engine.stats().busy_slots:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert (
            engine.generate(GenerationRequest("again", SamplingParams(max_tokens=3)))
            .collect()
            .usage.completion_tokens
            == 3
        )
    finally:
        engine.close()


def test_no_request_waits_forever(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=1)
    try:
        busy = engine.generate(GenerationRequest("busy", SamplingParams(max_tokens=500)))
        next(busy)
        waiting = engine.generate(GenerationRequest("patient", SamplingParams(max_tokens=5), timeout=0.02))
        started = time.monotonic()
        with pytest.raises(Unavailable):
            list(waiting)
        assert time.monotonic() - started < 3
        busy.close()
        deadline = time.monotonic() + 10
        while engine.stats().busy_slots:  # the closed request's slot frees between steps
            assert time.monotonic() < deadline
            time.sleep(0.005)
        # The tiny model writes 400 tokens in ~50 ms on an idle machine: a 3 ms limit ends it
        # early however fast or busy the machine is.
        slow = engine.generate(GenerationRequest("long", SamplingParams(max_tokens=400), timeout=0.003))
        last = list(slow)[-1]
        assert last.finish_reason == FINISH_LENGTH and last.usage.completion_tokens < 400
    finally:
        engine.close()


def test_a_conversation_gets_its_prefix_back_from_a_saved_state(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=1)
    try:
        conversation = "System: you are a careful assistant. " * 12 + "User: first question?"
        first = engine.generate(GenerationRequest(conversation, SamplingParams(max_tokens=4))).collect()
        other = engine.generate(
            GenerationRequest("Quite unrelated words here.", SamplingParams(max_tokens=4))
        ).collect()
        assert other.usage.cached_tokens <= 2  # it overwrote the conversation's slot...
        assert engine.stats().cached_prompts == 1  # ...after the slot's state was saved
        follow_up = engine.generate(
            GenerationRequest(conversation + " Assistant: ok. User: more?", SamplingParams(max_tokens=4))
        ).collect()
        assert follow_up.usage.cached_tokens >= first.usage.prompt_tokens - 2
        assert follow_up.usage.prompt_tokens - follow_up.usage.cached_tokens < 20
    finally:
        engine.close()


def test_a_new_prompt_takes_an_empty_slot_instead_of_another_conversations_cache(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=2)
    try:
        first = "Tell me about the sea."  # too short for the saved prompt states
        thirty = SamplingParams(max_tokens=30, ignore_eos=True)
        engine.generate(GenerationRequest(first, thirty)).collect()
        engine.generate(GenerationRequest("Tell me about the tall mountains of the north.", thirty)).collect()
        again = engine.generate(GenerationRequest(first, SamplingParams(max_tokens=8))).collect()
        assert again.usage.cached_tokens == again.usage.prompt_tokens - 2  # its slot was kept
    finally:
        engine.close()


def test_a_prefix_held_by_a_free_slot_is_copied_rather_than_overwritten(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=2)
    try:
        system = "You are an agent with a long system prompt about tools. " * 8
        one = engine.tokenize(system + "Task one, with a long answer.")
        answer = engine.generate(GenerationRequest(one, SamplingParams(max_tokens=60, logprobs=0))).collect()
        two = engine.generate(GenerationRequest(system + "Task two.", SamplingParams(max_tokens=3))).collect()
        assert two.usage.cached_tokens >= len(engine.tokenize(system)) - 2  # copied into the empty slot
        assert engine.stats().cached_prompts == 0  # the first conversation was not overwritten
        follow_up = one + [entry.id for entry in answer.logprobs] + engine.tokenize(" Go on.", add_bos=False)
        back = engine.generate(GenerationRequest(follow_up, SamplingParams(max_tokens=3))).collect()
        assert back.usage.cached_tokens >= len(one) + 59  # found in its slot, answer and all
        assert engine.stats().cached_prompts == 0
    finally:
        engine.close()


def test_a_saved_state_is_restored_when_it_saves_a_few_tokens(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=1)
    try:
        opening = "Write a short story about "
        story = opening + "a lighthouse keeper."
        long_answer = SamplingParams(max_tokens=80, ignore_eos=True)  # long enough to be saved
        engine.generate(GenerationRequest(story, long_answer)).collect()
        engine.generate(GenerationRequest(opening + "a fox.", long_answer)).collect()
        again = engine.generate(GenerationRequest(story, SamplingParams(max_tokens=4))).collect()
        gain = again.usage.prompt_tokens - 2 - len(engine.tokenize(opening))
        assert 8 <= gain < 16  # what the restore saves: a few tokens
        assert again.usage.cached_tokens == again.usage.prompt_tokens - 2
    finally:
        engine.close()


def test_a_shared_prefix_is_copied_from_a_busy_slot(tiny_model_path):
    engine = make_engine(tiny_model_path, parallel=2)
    try:
        system = "You are an agent with a long system prompt about tools. " * 8
        busy = engine.generate(GenerationRequest(system + "Task one.", SamplingParams(max_tokens=250)))
        next(busy)
        other = engine.generate(
            GenerationRequest(system + "Task two.", SamplingParams(max_tokens=3))
        ).collect()
        assert other.usage.cached_tokens >= len(engine.tokenize(system)) - 2
        busy.close()
        alone = make_engine(tiny_model_path, parallel=1)
        try:
            fresh = alone.generate(
                GenerationRequest(system + "Task two.", SamplingParams(max_tokens=3, temperature=0))
            ).collect()
        finally:
            alone.close()
        again = engine.generate(
            GenerationRequest(system + "Task two.", SamplingParams(max_tokens=3, temperature=0))
        ).collect()
        assert again.text == fresh.text  # reused cells give the same answer as a fresh evaluation
    finally:
        engine.close()
