"""Which upstream a request goes to, and what each kind of upstream is sent and answers:
the routing rules and the dialects on their own, without servers."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from modules.engines.base import SamplingParams
from modules.engines.remote.config import UpstreamConfig
from modules.engines.remote.dialects import Dialect, Listing, estimate_tokens
from modules.engines.remote.kinds import DIALECTS
from modules.engines.remote.pool import UP, Member, Upstream, affinity_key, choose
from modules.errors import InvalidRequest


def pool(*capacities: int) -> list[Member]:
    members = []
    for i, capacity in enumerate(capacities):
        upstream = Upstream(
            UpstreamConfig(name=f"u{i}", url=f"http://10.0.0.{i + 1}:8080", capacity=capacity)
        )
        upstream.state = UP
        upstream.dialect = DIALECTS["llama-server"]
        member = Member(upstream, "m", Listing("m"))
        upstream.members["m"] = member
        members.append(member)
    return members


def test_a_key_always_lands_on_the_same_member_while_it_has_room():
    members = pool(4, 4, 4)
    for key in ("a", "b", "c", "d"):
        first = choose(members, affinity_key(key, ""))
        assert all(choose(members, affinity_key(key, "")) is first for _ in range(20))


def test_keys_spread_in_proportion_to_capacity():
    members = pool(1, 2, 5)
    counts = Counter(
        choose(members, affinity_key(f"conversation-{i}", "")).upstream.name for i in range(8000)
    )
    shares = [counts[f"u{i}"] / 8000 for i in range(3)]
    assert shares == pytest.approx([1 / 8, 2 / 8, 5 / 8], abs=0.03)


def test_a_full_member_passes_its_requests_on_and_the_least_loaded_takes_the_overflow():
    members = pool(2, 2)
    key = affinity_key("same", "")
    preferred = choose(members, key)
    other = next(m for m in members if m is not preferred)
    preferred.in_flight = 2
    assert choose(members, key) is other  # bounded load: full means the next in its order
    other.in_flight = 2
    preferred.in_flight = 3
    assert choose(members, key) is other  # all full: the least loaded per slot


def test_an_ejected_upstream_moves_only_its_own_keys():
    members = pool(4, 4, 4)
    before = {i: choose(members, affinity_key(f"k{i}", "")) for i in range(300)}
    gone = members[1]
    gone.upstream.state = "ejected"
    after = {i: choose(members, affinity_key(f"k{i}", "")) for i in range(300)}
    moved = [i for i in before if before[i] is not after[i]]
    assert moved and all(before[i] is gone for i in moved)
    assert choose([gone], affinity_key("x", "")) is None


def test_without_a_key_the_prompt_prefix_is_the_key():
    system = "You are a helpful assistant. " * 40  # longer than the hashed prefix
    assert affinity_key(None, system + "first question") == affinity_key(None, system + "second question")
    assert affinity_key(None, "short a") != affinity_key(None, "short b")
    assert affinity_key("conv-1", "anything") == affinity_key("conv-1", "else")


PARAMS = SamplingParams(
    max_tokens=16,
    temperature=0.5,
    top_k=40,
    min_p=0.05,
    stop=("\n\n",),
    seed=3,
    logprobs=2,
    logit_bias={7: -100},
)


def test_each_kind_gets_hearths_sampling_in_its_own_words():
    body = DIALECTS["llama-server"].generation("m", "Hi", PARAMS, 4096).body
    assert (body["top_k"], body["min_p"], body["n_probs"], body["cache_prompt"]) == (40, 0.05, 2, True)
    assert body["stop"] == ["\n\n"] and body["logit_bias"] == {"7": -100} and "logprobs" not in body
    vllm = DIALECTS["vllm"].generation("m", "Hi", SamplingParams(json_schema={"type": "object"}), 4096).body
    assert vllm["structured_outputs"] == {"json": {"type": "object"}} and "top_k" not in vllm
    hearth = DIALECTS["hearth"].generation("m", [1, 2, 3], SamplingParams(grammar="root ::= x"), 4096).body
    assert hearth["prompt"] == [1, 2, 3] and hearth["grammar_string"] == "root ::= x"
    ollama = DIALECTS["ollama"].generation("m", "Hi", PARAMS, 8192)
    assert ollama.path == "/api/generate" and ollama.framing == "ndjson" and ollama.body["raw"] is True
    assert ollama.body["options"]["num_ctx"] == 8192 and ollama.body["options"]["num_predict"] == 16


def test_grammars_are_refused_clearly_where_the_upstream_has_none():
    for kind in ("ollama", "openai"):
        with pytest.raises(InvalidRequest, match="cannot follow a grammar"):
            DIALECTS[kind].generation("m", "Hi", SamplingParams(grammar="root ::= x"), 2048)
    openai = DIALECTS["openai"].generation("m", "Hi", SamplingParams(json_schema={"type": "object"}), 2048)
    assert openai.body["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_logprobs_in_both_shapes():
    llama = DIALECTS["llama-server"].chunk(
        {
            "choices": [
                {
                    "text": " Paris",
                    "finish_reason": None,
                    "logprobs": {
                        "content": [
                            {
                                "id": 9,
                                "token": " Paris",
                                "logprob": -0.1,
                                "bytes": [32, 80, 97, 114, 105, 115],
                                "top_logprobs": [
                                    {"id": 9, "token": " Paris", "logprob": -0.1, "bytes": [32]}
                                ],
                            }
                        ]
                    },
                }
            ]
        }
    )
    entry = llama.logprobs[0]
    assert (entry.token, entry.logprob, entry.id, entry.top[0].id) == (" Paris", -0.1, 9, 9)
    legacy = Dialect().chunk(
        {
            "choices": [
                {
                    "text": "ab",
                    "finish_reason": "stop",
                    "stop_reason": "\n",
                    "logprobs": {
                        "tokens": ["a", "b"],
                        "token_logprobs": [-1.0, -2.0],
                        "top_logprobs": [{"a": -1.0}, {}],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 3},
            },
        }
    )
    assert [e.logprob for e in legacy.logprobs] == [-1.0, -2.0] and legacy.stop_sequence == "\n"
    assert legacy.usage == {"prompt_tokens": 5, "completion_tokens": 2, "cached_tokens": 3}


def test_ollama_streams_ndjson_with_its_own_counts():
    ollama = DIALECTS["ollama"]
    assert ollama.chunk({"response": "Hi", "done": False}).text == "Hi"
    last = ollama.chunk(
        {"response": "", "done": True, "done_reason": "length", "prompt_eval_count": 7, "eval_count": 3}
    )
    assert (last.finish_reason, last.usage["prompt_tokens"], last.usage["completion_tokens"]) == (
        "length",
        7,
        3,
    )


def test_listings_name_the_models_and_what_they_know():
    listed = {
        "data": [
            {
                "id": "/models/Llama-3-8B.Q4.gguf",
                "owned_by": "llamacpp",
                "meta": {"n_ctx_train": 8192, "n_vocab": 128256},
            },
        ]
    }
    upstream = Upstream(UpstreamConfig(name="box", url="http://box:8080"))
    offered = upstream.offered(DIALECTS["llama-server"].listings(listed))
    assert list(offered) == ["Llama-3-8B.Q4"] and offered["Llama-3-8B.Q4"].n_vocab == 128256
    renamed = Upstream(
        UpstreamConfig(name="box", url="http://box:8080", models={"/models/Llama-3-8B.Q4.gguf": "llama3"})
    )
    assert list(renamed.offered(DIALECTS["llama-server"].listings(listed))) == ["llama3"]
    vllm = DIALECTS["vllm"].listings({"data": [{"id": "meta-llama/Llama-3.1-8B", "max_model_len": 32768}]})
    assert vllm[0].n_ctx == 32768
    hearth = DIALECTS["hearth"].listings(
        {"data": [{"id": "tiny", "kind": "text"}, {"id": "whisper", "kind": "audio"}]}
    )
    assert [m.id for m in hearth] == ["tiny"]


def test_the_estimate_for_upstreams_that_cannot_count_errs_on_the_long_side_for_english():
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(text) >= len(text) / 4  # English: about 4 bytes a token
    assert estimate_tokens("日本語のテキスト") == 8  # 24 bytes of UTF-8


def test_events_are_json_objects_or_a_broken_stream():
    from modules.engines.remote.http import StreamBroken, _event_json

    assert _event_json(json.dumps({"a": 1}).encode()) == {"a": 1}
    for bad in (b"[1, 2]", b"not json"):
        with pytest.raises(StreamBroken):
            _event_json(bad)
