"""The observer (metrics) hears of every generation that ends exactly once, with its finish
reason and the tokens it really generated: finished, cut at its length, stopped by id,
cancelled, or closed by a consumer that stopped reading."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from modules.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    GenerationRequest,
    SamplingParams,
    Usage,
)
from modules.engines.crossthread import make_mailer
from modules.engines.llamacpp.engine import LlamaCppEngine
from modules.engines.llamacpp.scheduler import ContextOptions

LONG = 15000  # tokens: seconds of the tiny model, far more than any test reads before stopping


class Recorder:
    def __init__(self) -> None:
        self.ended: list[tuple[str, str, Usage]] = []

    def generation_finished(self, model: str, finish_reason: str, usage: Usage) -> None:
        self.ended.append((model, finish_reason, usage))


@pytest.fixture
def observed(tiny_model_path):
    recorder = Recorder()
    options = ContextOptions(n_ctx=16384, parallel=1, threads=1, threads_batch=1, batch_size=64)
    engine = LlamaCppEngine("tiny", Path(tiny_model_path), options, make_mailer(), recorder)
    yield engine, recorder
    engine.close()


def start(engine, max_tokens: int = LONG):
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    return engine.generate(GenerationRequest("Once upon a time", params))


def read(generation, n: int) -> None:
    """Read `n` deltas (at least `n` tokens), none of them the last."""
    for _ in range(n):
        assert not next(generation).finish_reason


def test_a_finished_generation_is_reported_once(observed):
    engine, recorder = observed
    with start(engine, max_tokens=7) as generation:
        deltas = list(generation)
    generation.close()
    assert [(m, r) for m, r, _ in recorder.ended] == [("tiny", FINISH_LENGTH)]
    assert recorder.ended[0][2] == deltas[-1].usage
    assert recorder.ended[0][2].completion_tokens == 7


def test_closing_mid_stream_reports_a_cancelled_generation_with_its_tokens(observed):
    engine, recorder = observed
    generation = start(engine)
    read(generation, 5)
    generation.close()
    assert engine.stats().busy_slots == 0  # close waits until the engine has let go
    [(model, reason, usage)] = recorder.ended
    assert (model, reason) == ("tiny", FINISH_CANCELLED)
    assert 5 <= usage.completion_tokens < LONG
    assert usage.prompt_tokens > 0 and usage.first_token_seconds is not None
    generation.close()
    assert list(generation) == []
    assert len(recorder.ended) == 1


def test_a_consumer_that_cancels_sees_the_end_at_once_and_it_is_reported(observed):
    engine, recorder = observed
    generation = start(engine)
    read(generation, 3)
    generation.cancel()
    assert list(generation) == []
    assert [r for _, r, _ in recorder.ended] == [FINISH_CANCELLED]
    assert recorder.ended[0][2].completion_tokens >= 3


def test_stopping_by_id_is_reported_when_the_stream_ends(observed):
    engine, recorder = observed
    generation = start(engine)
    read(generation, 3)
    assert engine.cancel(generation.request_id)
    rest = list(generation)
    assert rest[-1].finish_reason == FINISH_CANCELLED
    assert [u for _, _, u in recorder.ended] == [rest[-1].usage]


def test_a_cancel_from_another_thread_is_reported_once(observed):
    engine, recorder = observed
    generation = start(engine)
    reading = threading.Event()
    canceller = threading.Thread(target=lambda: (reading.wait(30), generation.cancel()))
    canceller.start()
    for seen, _ in enumerate(generation, start=1):
        if seen == 3:
            reading.set()
        assert seen < LONG
    canceller.join(timeout=30)
    generation.close()
    assert [r for _, r, _ in recorder.ended] == [FINISH_CANCELLED]
    assert recorder.ended[0][2].completion_tokens >= 3


def test_a_request_closed_while_it_waits_is_reported_without_tokens(observed):
    engine, recorder = observed
    running = start(engine)
    read(running, 1)
    waiting = start(engine, max_tokens=5)
    waiting.close()
    assert [(r, u.completion_tokens) for _, r, u in recorder.ended] == [(FINISH_CANCELLED, 0)]
    running.close()
    assert [r for _, r, _ in recorder.ended] == [FINISH_CANCELLED, FINISH_CANCELLED]


def test_closing_after_the_end_but_before_reading_it_keeps_the_real_reason(observed):
    engine, recorder = observed
    generation = start(engine, max_tokens=4)
    next(generation)
    deadline = time.monotonic() + 30
    while engine.stats().busy_slots:  # the job ends; its last delta is not read yet
        assert time.monotonic() < deadline
        time.sleep(0.01)
    generation.close()
    assert [(r, u.completion_tokens) for _, r, u in recorder.ended] == [(FINISH_LENGTH, 4)]
