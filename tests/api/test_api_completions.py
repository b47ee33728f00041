"""POST /v1/completions with the official client: echo, logprobs, n, stop, suffix, seed,
best_of, token prompts, streaming, and exact usage."""

from __future__ import annotations

import requests
from api_helpers import post
from openai_schemas import validator
from stream_events import chunks

PROMPT = "The quick brown fox"


def prompt_tokens(api, text: str) -> int:
    return post(api, "/v1/internal/encode", {"text": text}).json()["length"]


def raw_completion(api, **body) -> dict:
    response = post(api, "/v1/completions", {"prompt": PROMPT, **body})
    assert response.status_code == 200, response.text
    data = response.json()
    validator("CreateCompletionResponse").validate(data)
    return data


def test_greedy_completion_has_exact_usage(api, client):
    result = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0)
    choice = result.choices[0]
    assert result.object == "text_completion" and result.model == "tiny"
    assert result.id.startswith("cmpl-")
    assert choice.finish_reason == "length" and choice.text.strip()
    assert result.usage.prompt_tokens == prompt_tokens(api, PROMPT)
    assert result.usage.completion_tokens == 12
    assert result.usage.total_tokens == result.usage.prompt_tokens + 12
    again = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0)
    assert again.choices[0].text == choice.text


def test_default_max_tokens_is_16(client):
    result = client.completions.create(model="tiny", prompt=PROMPT, temperature=0)
    assert result.usage.completion_tokens == 16


def test_echo_with_logprobs(api, client):
    result = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=5, temperature=0, echo=True, logprobs=3
    )
    choice = result.choices[0]
    plain = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=5, temperature=0)
    assert choice.text == PROMPT + plain.choices[0].text
    lp = choice.logprobs
    n_prompt = prompt_tokens(api, PROMPT) - 1  # the BOS token is not echoed
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert len(lp.tokens) == n_prompt + 5
    assert all(len(top) == 3 for top in lp.top_logprobs)
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    for token, offset in list(zip(lp.tokens, lp.text_offset, strict=True))[1:]:
        assert choice.text[offset : offset + len(token)] == token
    # usage counts the prompt once, even though it is echoed
    assert result.usage.completion_tokens == 5
    assert result.usage.prompt_tokens == n_prompt + 1
    validator("CreateCompletionResponse").validate(raw_completion(api, max_tokens=5, echo=True, logprobs=3))


def test_logprobs_match_the_chosen_tokens(client):
    result = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=2)
    lp = result.choices[0].logprobs
    assert "".join(lp.tokens) == result.choices[0].text
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert logprob <= 0 and len(top) == 2
        assert max(top.values()) == logprob  # greedy: the chosen token is the most likely one
        assert top[token] == logprob


def test_echo_with_zero_max_tokens_scores_the_prompt(client):
    result = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=0, echo=True, logprobs=0)
    choice = result.choices[0]
    assert choice.text == PROMPT
    assert result.usage.completion_tokens == 0
    assert all(lp is not None and lp < 0 for lp in choice.logprobs.token_logprobs)


def test_n_choices_differ_and_usage_counts_the_prompt_once(api, client):
    result = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=6, n=3, seed=7, temperature=1.0
    )
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert len({c.text for c in result.choices}) > 1
    assert result.usage.completion_tokens == 18
    assert result.usage.prompt_tokens == prompt_tokens(api, PROMPT)


def test_seed_is_reproducible_and_choice_i_uses_seed_plus_i(client):
    def texts(**kwargs):
        return [
            c.text
            for c in client.completions.create(
                model="tiny", prompt=PROMPT, max_tokens=8, temperature=1.0, **kwargs
            ).choices
        ]

    assert texts(seed=42) == texts(seed=42)
    assert texts(seed=42) != texts(seed=43)
    assert texts(seed=42, n=2) == texts(seed=42) + texts(seed=43)


def test_stop_string_ends_the_text(client):
    full = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=20, temperature=0)
    text = full.choices[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), text
    stopped = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=20, temperature=0, stop=[stop, "zzzz"]
    )
    assert stopped.choices[0].text == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage.completion_tokens < 20


def test_suffix_follows_the_completion(client):
    plain = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=4, temperature=0)
    result = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=4, temperature=0, suffix=" THE END"
    )
    assert result.choices[0].text == plain.choices[0].text + " THE END"


def test_best_of_returns_the_candidate_with_the_highest_mean_logprob(client):
    candidates = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=6, n=3, seed=11, temperature=1.0, logprobs=0
    ).choices
    means = [sum(c.logprobs.token_logprobs) / len(c.logprobs.token_logprobs) for c in candidates]
    best = candidates[means.index(max(means))].text
    result = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=6, n=1, best_of=3, seed=11, temperature=1.0
    )
    assert [c.text for c in result.choices] == [best]
    assert result.choices[0].logprobs is None  # not asked for
    assert result.usage.completion_tokens == 18  # every candidate was generated


def test_token_id_prompts_and_several_prompts(api, client):
    ids = post(api, "/v1/internal/encode", {"text": PROMPT}).json()["tokens"]
    by_text = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=5, temperature=0)
    by_ids = client.completions.create(model="tiny", prompt=ids, max_tokens=5, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == len(ids)
    two = client.completions.create(model="tiny", prompt=[ids, ids[:2]], max_tokens=3, n=2, temperature=0)
    assert [c.index for c in two.choices] == [0, 1, 2, 3]
    assert two.choices[0].text == two.choices[1].text  # greedy: the same prompt, the same text
    assert two.usage.prompt_tokens == len(ids) + 2
    assert two.usage.completion_tokens == 12
    strings = client.completions.create(model="tiny", prompt=[PROMPT, "Hello"], max_tokens=2, temperature=0)
    assert strings.choices[0].text == by_text.choices[0].text[: len(strings.choices[0].text)]


def test_stream_matches_the_whole_answer_and_ends_with_usage(client):
    whole = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=10, temperature=0)
    stream = client.completions.create(
        model="tiny",
        prompt=PROMPT,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert len({c.id for c in chunks}) == 1


def test_stream_with_echo_logprobs_and_suffix(api):
    response = requests.post(
        api.api_url + "/completions",
        json={
            "prompt": PROMPT,
            "max_tokens": 3,
            "temperature": 0,
            "echo": True,
            "logprobs": 1,
            "suffix": "!",
            "stream": True,
        },
        stream=True,
        timeout=30,
    )
    parts, done = chunks(response)
    assert done  # every client gets [DONE], python-requests included
    whole = raw_completion(api, max_tokens=3, temperature=0, echo=True, logprobs=1, suffix="!")
    assert "".join(p["choices"][0]["text"] for p in parts) == whole["choices"][0]["text"]
    tokens = [t for p in parts for t in p["choices"][0]["logprobs"]["tokens"]]
    assert tokens == whole["choices"][0]["logprobs"]["tokens"]
    offsets = [o for p in parts for o in p["choices"][0]["logprobs"]["text_offset"]]
    assert offsets == whole["choices"][0]["logprobs"]["text_offset"]
