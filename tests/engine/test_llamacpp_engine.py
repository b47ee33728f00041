"""The llama.cpp engine on the tiny random model: sampling, stops, logprobs, cancel, limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from modules.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    GenerationRequest,
    SamplingParams,
)
from modules.engines.crossthread import make_mailer
from modules.engines.llamacpp.engine import LlamaCppEngine
from modules.engines.llamacpp.scheduler import ContextOptions
from modules.errors import ContextOverflow, InvalidRequest

PROMPT = "The quick brown fox"


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    options = ContextOptions(n_ctx=256, parallel=2, threads=1, threads_batch=1, batch_size=64)
    eng = LlamaCppEngine("tiny", Path(tiny_model_path), options, make_mailer())
    yield eng
    eng.close()


def run(engine, prompt=PROMPT, **params):
    return engine.generate(GenerationRequest(prompt, SamplingParams(**params))).collect()


def stream(engine, prompt=PROMPT, **params):
    return list(engine.generate(GenerationRequest(prompt, SamplingParams(**params))))


def test_greedy_is_deterministic(engine):
    first = run(engine, max_tokens=24, temperature=0)
    second = run(engine, max_tokens=24, temperature=0)
    assert first.text == second.text
    assert len(first.text) > 20
    assert first.finish_reason == FINISH_LENGTH
    assert first.usage.completion_tokens == 24


def test_same_seed_same_text_other_seed_other_text(engine):
    a = run(engine, max_tokens=24, temperature=1.0, seed=42)
    b = run(engine, max_tokens=24, temperature=1.0, seed=42)
    c = run(engine, max_tokens=24, temperature=1.0, seed=43)
    assert a.text == b.text
    assert a.text != c.text


def test_usage_counts_prompt_and_completion(engine):
    completion = run(engine, max_tokens=5, temperature=0)
    assert completion.usage.prompt_tokens == len(engine.tokenize(PROMPT))
    assert completion.usage.completion_tokens == 5


def test_streamed_text_equals_whole_text(engine):
    deltas = stream(engine, max_tokens=30, temperature=0)
    assert len(deltas) > 5, "tokens must arrive one by one"
    assert "".join(d.text for d in deltas) == run(engine, max_tokens=30, temperature=0).text
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1].finish_reason == FINISH_LENGTH and deltas[-1].usage is not None


def _stop_across_tokens(engine) -> tuple[str, str]:
    """A stop string that begins inside one generated token and ends inside a later one."""
    deltas = stream(engine, max_tokens=40, temperature=0)
    pieces = [d.text for d in deltas if d.text]
    for i in range(3, len(pieces) - 1):
        left, right = pieces[i], pieces[i + 1]
        if len(left) >= 2 and len(right) >= 2:
            before = "".join(pieces[:i]) + left[:-2]
            return before, left[-2:] + right[:2]
    pytest.fail(f"no two adjacent multi-character pieces in {pieces!r}")


def test_stop_string_split_across_tokens_never_leaks(engine):
    before, stop = _stop_across_tokens(engine)
    whole = run(engine, max_tokens=40, temperature=0, stop=(stop,))
    assert whole.finish_reason == FINISH_STOP
    assert whole.text == before
    deltas = stream(engine, max_tokens=40, temperature=0, stop=(stop,))
    streamed = "".join(d.text for d in deltas)
    assert streamed == before
    for k in range(1, len(stop)):  # not even a partial stop string reaches the client
        assert not streamed.endswith(stop[:k])
    assert deltas[-1].finish_reason == FINISH_STOP


def test_stop_that_never_matches_releases_the_held_text_at_the_end(engine):
    plain = run(engine, max_tokens=20, temperature=0)
    tail = plain.text[-3:]
    assert run(engine, max_tokens=20, temperature=0, stop=(tail + "\u2603",)).text == plain.text


def test_length_limit_and_finish_reason(engine):
    for n in (1, 3, 10):
        completion = run(engine, max_tokens=n, temperature=0)
        assert completion.usage.completion_tokens == n
        assert completion.finish_reason == FINISH_LENGTH


def test_logit_bias_bans_the_greedy_token(engine):
    first = run(engine, max_tokens=1, temperature=0, logprobs=0).logprobs[0].id
    banned = run(engine, max_tokens=12, temperature=0, logprobs=0, logit_bias={first: -100})
    assert banned.logprobs[0].id != first
    assert first not in [lp.id for lp in banned.logprobs]
    favoured = run(engine, max_tokens=3, temperature=0, logprobs=0, logit_bias={first + 1: 100})
    assert [lp.id for lp in favoured.logprobs] == [first + 1] * 3


def test_grammar_constrains_output(engine):
    grammar = 'root ::= ("yes" | "no") " " [0-9] [0-9] [0-9]'
    completion = run(engine, max_tokens=20, temperature=1.0, seed=1, grammar=grammar)
    assert completion.finish_reason == FINISH_STOP  # the grammar is complete: only EOS is left
    assert completion.text.split(" ")[0] in ("yes", "no")
    assert completion.text.split(" ")[1].isdigit() and len(completion.text) in (7, 6)


def test_json_schema_output_parses_and_validates(engine):
    schema = {
        "type": "object",
        "properties": {
            "answer": {"enum": ["yes", "no", "maybe"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 9},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2},
        },
        "required": ["answer", "confidence", "tags"],
        "additionalProperties": False,
    }
    for seed in (1, 2, 3):
        completion = run(engine, max_tokens=120, temperature=1.0, seed=seed, json_schema=schema)
        data = json.loads(completion.text)
        jsonschema.validate(data, schema)


JSON_OBJECTS = [{"type": "object"}, {"type": "object", "properties": {"note": {"type": "string"}}}]


@pytest.mark.parametrize("schema", JSON_OBJECTS)
def test_json_strings_never_hold_raw_control_characters(engine, schema):
    """A newline or tab may be in a JSON string only escaped; the model may want it raw."""
    for seed in range(12):
        completion = run(engine, max_tokens=80, temperature=1.5, seed=seed, json_schema=schema)
        assert not any(ord(c) < 0x20 for c in completion.text), repr(completion.text)
        if completion.finish_reason == FINISH_STOP:
            json.loads(completion.text)


def test_bad_grammar_is_a_clear_error(engine):
    with pytest.raises(InvalidRequest):
        run(engine, max_tokens=5, grammar="root ::= (")


def test_logprobs_equal_log_softmax_of_the_logits(engine, tiny_model_path):
    from llama_cpp import Llama

    completion = run(engine, max_tokens=6, temperature=0, logprobs=3)
    assert len(completion.logprobs) == 6
    # Same context settings as the engine (flash attention off) and the same evaluation
    # order: the numbers must agree to the last bit, not to float noise.
    raw = Llama(
        model_path=str(tiny_model_path),
        n_ctx=256,
        n_threads=1,
        logits_all=True,
        flash_attn=False,
        verbose=False,
    )
    tokens = raw.tokenize(PROMPT.encode())
    raw.eval(tokens)  # the prompt at once, then one token per step, as the engine does
    for entry in completion.logprobs:
        logits = np.array(raw.scores[raw.n_tokens - 1], dtype=np.float64)
        expected = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        token = int(np.argmax(logits))
        assert entry.id == token
        assert entry.logprob == pytest.approx(expected[token], abs=1e-9)
        assert entry.top[0].logprob == pytest.approx(expected[token], abs=1e-9)
        top3 = np.sort(expected)[::-1][:3]
        assert [t.logprob for t in entry.top] == pytest.approx(list(top3), abs=1e-9)
        raw.eval([token])
    raw.close()


def test_echo_emits_the_prompt_with_its_logprobs_first(engine):
    completion = engine.generate(
        GenerationRequest(PROMPT, SamplingParams(max_tokens=3, temperature=0, logprobs=1), echo=True)
    ).collect()
    assert completion.text.startswith(PROMPT)
    prompt_tokens = engine.tokenize(PROMPT, add_bos=False)
    echoed = completion.logprobs[: len(prompt_tokens)]
    assert "".join(lp.token for lp in echoed).strip() == PROMPT
    assert all(lp.logprob is not None and lp.logprob <= 0 for lp in echoed)
    assert len(completion.logprobs) == len(prompt_tokens) + 3


def test_cancel_ends_a_generation_within_one_token(engine):
    generation = engine.generate(GenerationRequest(PROMPT, SamplingParams(max_tokens=200, temperature=0)))
    next(generation)
    generation.cancel()
    assert engine.stats().busy_slots == 0 or _wait_idle(engine)
    assert list(generation) == []  # the consumer sees the end at once


def test_cancel_by_id_from_elsewhere_finishes_the_stream(engine):
    generation = engine.generate(GenerationRequest(PROMPT, SamplingParams(max_tokens=200, temperature=0)))
    next(generation)
    assert engine.cancel(generation.request_id)
    rest = list(generation)
    assert rest[-1].finish_reason == FINISH_CANCELLED
    assert rest[-1].usage.completion_tokens < 200
    assert not engine.cancel(generation.request_id)


def _wait_idle(engine, timeout=2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.stats().busy_slots == 0:
            return True
        time.sleep(0.005)
    return False


def test_context_overflow_is_an_error_not_a_crash(engine):
    long_prompt = "hello world " * 400
    with pytest.raises(ContextOverflow):
        run(engine, long_prompt, max_tokens=5)
    with pytest.raises(ContextOverflow):
        run(engine, max_tokens=10_000)
    assert run(engine, max_tokens=2, temperature=0).usage.completion_tokens == 2


def test_without_max_tokens_generation_stops_at_the_context(engine):
    completion = run(engine, max_tokens=None, temperature=0)
    assert completion.finish_reason == FINISH_LENGTH
    assert completion.usage.prompt_tokens + completion.usage.completion_tokens == engine.info.n_ctx


def test_invalid_token_ids_are_rejected(engine):
    with pytest.raises(InvalidRequest):
        run(engine, [1, 2, 10**9], max_tokens=1)
    with pytest.raises(InvalidRequest):
        run(engine, [], max_tokens=1)


def test_token_ids_as_prompt(engine):
    tokens = engine.tokenize(PROMPT)
    assert (
        run(engine, tokens, max_tokens=8, temperature=0).text == run(engine, max_tokens=8, temperature=0).text
    )


@pytest.mark.parametrize("text", ["Hello world, this is a test.", "héllo 世界 🙂 — ok", "a\nb\tc  d"])
def test_tokenize_detokenize_round_trip(engine, text):
    assert engine.detokenize(engine.tokenize(text)) == text
    assert engine.count_tokens(text) == len(engine.tokenize(text, add_bos=False))


def test_multibyte_characters_split_across_tokens_stream_intact(engine):
    target = "世界 🙂 héllo"
    pieces = engine.tokenize(target, add_bos=False)
    assert len(pieces) > len(target), "the text must be spelled in byte tokens"
    grammar = "root ::= " + json.dumps(target, ensure_ascii=False)
    deltas = stream(engine, max_tokens=len(pieces) + 2, temperature=0, grammar=grammar)
    texts = [d.text for d in deltas]
    assert "".join(texts) == target
    assert all("\ufffd" not in t for t in texts)
    assert sum(1 for t in texts if t) > 3, "characters should still arrive one by one"


def test_json_schema_with_astral_characters_yields_valid_utf8(engine):
    completion = run(engine, max_tokens=20, temperature=0, json_schema={"enum": ["🙂 yes"]})
    assert json.loads(completion.text) == "🙂 yes"


def test_prefix_of_previous_prompt_is_reused(engine):
    system = "You are a helpful assistant. " * 10
    first = engine.generate(
        GenerationRequest(system + "Question one?", SamplingParams(max_tokens=2))
    ).collect()
    second = engine.generate(
        GenerationRequest(system + "Question two?", SamplingParams(max_tokens=2))
    ).collect()
    assert first.usage.cached_tokens <= 1
    assert second.usage.cached_tokens >= len(engine.tokenize(system)) - 2


def test_penalties_change_greedy_output(engine):
    plain = run(engine, max_tokens=30, temperature=0)
    penalised = run(
        engine,
        max_tokens=30,
        temperature=0,
        repetition_penalty=1.5,
        frequency_penalty=1.0,
        presence_penalty=1.0,
    )
    assert plain.text != penalised.text


def test_next_token_probe_matches_greedy(engine):
    top = engine.token_logprobs(PROMPT, SamplingParams(), top_n=5, use_samplers=False)
    assert len(top) == 5
    assert top == sorted(top, key=lambda t: -t.logprob)
    first = run(engine, max_tokens=1, temperature=0).text
    assert top[0].token == first
    filtered = engine.token_logprobs(
        PROMPT, SamplingParams(temperature=1.0, top_k=2), top_n=5, use_samplers=True
    )
    assert sum(1 for t in filtered if t.logprob > -np.inf) == 2


def test_the_server_bound_caps_every_request(tiny_model_path):
    """--max-output-tokens: at most N tokens, whatever the request asks (or if it asks none)."""
    options = ContextOptions(
        n_ctx=256, parallel=1, threads=1, threads_batch=1, batch_size=64, max_output_tokens=5
    )
    capped = LlamaCppEngine("tiny", Path(tiny_model_path), options, make_mailer())
    try:
        for asked in (None, 100, 3):
            done = run(capped, max_tokens=asked, temperature=0, ignore_eos=True)
            assert done.usage.completion_tokens == min(asked or 5, 5)
            assert done.finish_reason == FINISH_LENGTH
    finally:
        capped.close()


def test_the_last_delta_names_the_stop_string_that_ended_it(engine):
    text = run(engine, max_tokens=40, temperature=0).text
    stop = text[10:14]
    deltas = stream(engine, max_tokens=40, temperature=0, stop=("never seen", stop))
    assert deltas[-1].finish_reason == FINISH_STOP and deltas[-1].stop_sequence == stop
    assert stream(engine, max_tokens=3, temperature=0)[-1].stop_sequence is None


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_drafting_changes_the_steps_not_the_text(engine, temperature):
    """Prompt-lookup drafting samples every position with the sequence's own sampler: the same
    tokens as without it, whatever is accepted. A prompt that repeats itself gives drafts;
    whether a sampled text repeats it depends on the seed, so eight seeds are run: every one
    must keep its text, and some must have drafted."""
    prompt = "the world is a test model and the world is a test model and the world is"
    drafted_tokens = 0
    for seed in range(8):
        common = {"max_tokens": 40, "temperature": temperature, "seed": seed, "ignore_eos": True}
        plain = run(engine, prompt, speculative=False, **common)
        drafted = run(engine, prompt, speculative=True, **common)
        assert drafted.text == plain.text, seed
        assert plain.usage.drafted_tokens == 0
        assert drafted.usage.completion_tokens == plain.usage.completion_tokens == 40
        drafted_tokens += drafted.usage.drafted_tokens
    assert drafted_tokens > 0
