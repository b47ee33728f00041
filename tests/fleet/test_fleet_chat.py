"""Everything Hearth adds works on a remote model: a Hearth in front of two upstream Hearths
(the tiny model) answers as the upstream itself would, with characters, modes, templates,
tool calls, JSON schemas, stop strings, logprobs, n > 1, streaming, every protocol, the
extensions' hooks and history; a conversation stays on one upstream."""

from __future__ import annotations

import json
from types import SimpleNamespace

import anthropic
import openai
import pytest
import requests
from fleet_support import upstream_requests, upstream_states

from modules.engines.remote.pool import affinity_key, ranked

SHOUT = """
params = {}

def input_modifier(string, state, is_chat=False):
    if "[shout]" in string:
        state["shout"] = True
        return string.replace("[shout]", "(asked politely)")
    return string

def output_modifier(string, state, is_chat=False):
    return string.upper() if state.get("shout") else string
"""


@pytest.fixture(scope="module")
def setup(fleet):
    a, b = fleet.upstream(), fleet.upstream()
    front = fleet.front(
        {"a": a.api_base, "b": b.api_base},
        "--api",
        "--model",
        "tiny",
        "--extensions",
        "shout",
        files={"extensions/shout/script.py": SHOUT},
    )
    return SimpleNamespace(a=a, b=b, front=front)


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api_url, api_key="sk-x", max_retries=0, timeout=60)


def test_the_front_lists_the_upstreams_models(setup):
    models = {m.id: m for m in client(setup.front).models.list().data}
    assert models["tiny"].model_extra["upstreams"] == ["a", "b"]
    assert models["tiny"].model_extra["loaded"] is True
    assert "Tiny Two Instruct" in models  # every model of the upstreams, loaded there or not
    assert upstream_states(setup.front) == {"a": "up", "b": "up"}
    info = requests.get(setup.front.api_url + "/internal/model/info", timeout=10).json()
    assert (info["model_name"], info["loader"], info["n_ctx"]) == ("tiny", "remote", 2048)
    assert info["stats"]["slots"] == 8  # 4 on each upstream


REQUESTS = {
    "instruct": {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 24},
    "character": {
        "messages": [{"role": "user", "content": "Who are you?"}],
        "mode": "chat",
        "character": "Ada",
        "max_tokens": 24,
    },
    "chat-instruct": {
        "messages": [{"role": "user", "content": "Tell me"}],
        "mode": "chat-instruct",
        "character": "Ada",
        "max_tokens": 16,
    },
    "template": {
        "messages": [{"role": "system", "content": "Be short."}, {"role": "user", "content": "Hi"}],
        "instruction_template": "Alpaca",
        "max_tokens": 16,
    },
    "stop": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 40, "stop": ["o", "e"]},
    "logprobs": {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 6,
        "logprobs": True,
        "top_logprobs": 3,
    },
    "n": {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 8,
        "n": 3,
        "temperature": 1,
        "seed": 7,
    },
    "json": {
        "messages": [{"role": "user", "content": "A number"}],
        "max_tokens": 30,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "n",
                "schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}},
                    "required": ["n"],
                },
            },
        },
    },
    "tool": {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "max_tokens": 60,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                        "required": ["city"],
                    },
                },
            }
        ],
        "tool_choice": "required",
    },
}


def messages(body: dict) -> list[dict]:
    """The choices' messages, without the random ids of tool calls."""
    out = []
    for choice in body["choices"]:
        message = dict(choice["message"])
        message["tool_calls"] = [{**c, "id": None} for c in message.get("tool_calls") or []]
        out.append(message)
    return out


@pytest.mark.parametrize("name", list(REQUESTS))
def test_a_remote_model_answers_as_the_upstream_itself(setup, name):
    """Greedy (or seeded) answers through the front equal the upstream's own: the front built
    the same prompt, grammar and stop strings, and asked for the same sampling."""
    body = {"model": "tiny", "temperature": 0, **REQUESTS[name]}
    direct = requests.post(setup.a.api_url + "/chat/completions", json=body, timeout=60).json()
    routed = requests.post(setup.front.api_url + "/chat/completions", json=body, timeout=60).json()
    assert "error" not in routed, routed
    assert messages(routed) == messages(direct)
    assert [c["finish_reason"] for c in routed["choices"]] == [c["finish_reason"] for c in direct["choices"]]
    assert routed["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"]
    assert routed["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]
    if name == "logprobs":
        got, want = (r["choices"][0]["logprobs"]["content"] for r in (routed, direct))
        assert [e["token"] for e in got] == [e["token"] for e in want]
        assert [e["logprob"] for e in got] == pytest.approx([e["logprob"] for e in want], abs=1e-4)
        assert [len(e["top_logprobs"]) for e in got] == [3] * len(got)
    if name == "json":
        assert 1 <= json.loads(routed["choices"][0]["message"]["content"])["n"] <= 9
    if name == "tool":
        call = routed["choices"][0]["message"]["tool_calls"][0]["function"]
        assert call["name"] == "weather" and json.loads(call["arguments"])["city"] in ("Paris", "Rome")
        assert routed["choices"][0]["finish_reason"] == "tool_calls"
    if name == "stop":
        assert not {"o", "e"} & set(routed["choices"][0]["message"]["content"])


def test_a_stream_is_the_whole_answer_in_pieces(setup):
    body = {
        "model": "tiny",
        "temperature": 0,
        "max_tokens": 30,
        "messages": REQUESTS["character"]["messages"],
    }
    extra = {"mode": "chat", "character": "Ada"}
    whole = client(setup.front).chat.completions.create(**body, extra_body=extra)
    stream = client(setup.front).chat.completions.create(
        **body, extra_body=extra, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # really streamed


def test_completions_with_echo_suffix_and_token_prompts(setup):
    c = client(setup.front)
    plain = c.completions.create(model="tiny", prompt="Once upon a time", max_tokens=8, temperature=0)
    direct = client(setup.a).completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=8, temperature=0
    )
    assert plain.choices[0].text == direct.choices[0].text
    echoed = c.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=8, temperature=0, echo=True, suffix="!"
    )
    assert echoed.choices[0].text == "Once upon a time" + plain.choices[0].text + "!"
    tokens = requests.post(
        setup.front.api_url + "/internal/encode", json={"text": "Once upon a time"}, timeout=30
    )
    ids = tokens.json()["tokens"]
    assert (
        ids
        == requests.post(setup.a.api_url + "/internal/encode", json={"text": "Once upon a time"}).json()[
            "tokens"
        ]
    )
    by_ids = c.completions.create(model="tiny", prompt=ids, max_tokens=8, temperature=0)
    assert by_ids.choices[0].text == plain.choices[0].text
    decoded = requests.post(setup.front.api_url + "/internal/decode", json={"tokens": ids}, timeout=30).json()
    assert decoded["text"].strip() == "Once upon a time"


def test_responses_and_anthropic_messages_reach_the_remote_model(setup):
    c = client(setup.front)
    first = c.responses.create(model="tiny", input="Hello", max_output_tokens=12, temperature=0)
    assert first.status in ("completed", "incomplete") and first.output_text
    second = c.responses.create(
        model="tiny", input="And again", previous_response_id=first.id, max_output_tokens=12, temperature=0
    )
    assert second.output_text
    claude = anthropic.Anthropic(base_url=setup.front.api_base, api_key="sk-x", max_retries=0)
    message = claude.messages.create(
        model="tiny", max_tokens=12, messages=[{"role": "user", "content": "Hello"}]
    )
    assert message.content[0].text and message.usage.output_tokens >= 1
    with claude.messages.stream(
        model="tiny", max_tokens=12, messages=[{"role": "user", "content": "Hi"}]
    ) as s:
        assert "".join(s.text_stream)
    counted = claude.messages.count_tokens(model="tiny", messages=[{"role": "user", "content": "Hello"}])
    assert counted.input_tokens > 1


def test_extensions_hooks_run_in_front_of_a_remote_model(setup):
    polite = {"model": "tiny", "temperature": 0, "max_tokens": 12}
    polite["messages"] = [{"role": "user", "content": "Hello there (asked politely)"}]
    direct = requests.post(setup.a.api_url + "/chat/completions", json=polite, timeout=60).json()
    shouted = {**polite, "messages": [{"role": "user", "content": "Hello there [shout]"}]}
    routed = requests.post(setup.front.api_url + "/chat/completions", json=shouted, timeout=60).json()
    # input_modifier changed the prompt the upstream got, output_modifier the reply
    assert routed["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"].upper()
    assert routed["choices"][0]["message"]["content"] != direct["choices"][0]["message"]["content"]


def preferred(history_id: str, names=("a", "b")) -> str:
    members = [SimpleNamespace(upstream=SimpleNamespace(name=n), capacity=4) for n in names]
    key = affinity_key(f"history:{history_id}", "")
    return ranked(key, members)[0].upstream.name


def test_a_conversation_stays_on_one_upstream_and_is_saved_by_the_front(setup):
    ids = {"a": [], "b": []}
    for i in range(100):
        history_id = f"fleet-{i}"
        side = preferred(history_id)
        if len(ids[side]) < 2:
            ids[side].append(history_id)
    for side, history_ids in ids.items():
        for history_id in history_ids:
            messages = []
            for turn in range(3):
                messages.append({"role": "user", "content": f"Turn {turn}"})
                before = upstream_requests(setup.front)
                reply = requests.post(
                    setup.front.api_url + "/chat/completions",
                    json={"model": "tiny", "messages": messages, "max_tokens": 6, "history_id": history_id},
                    timeout=60,
                ).json()
                messages.append(reply["choices"][0]["message"])
                after = upstream_requests(setup.front)
                served = [name for name in after if after[name] > before.get(name, 0)]
                assert served == [side], (history_id, turn, served)
            saved = json.loads(
                (setup.front.extra["user_data"] / "logs" / "instruct" / f"{history_id}.json").read_text()
            )
            assert [m["content"] for m in saved["messages"]] == [m["content"] for m in messages]


def test_a_responses_chain_stays_on_one_upstream(setup):
    c = client(setup.front)
    before = upstream_requests(setup.front)
    response = c.responses.create(model="tiny", input="One", max_output_tokens=4)
    for text in ("Two", "Three", "Four"):
        response = c.responses.create(
            model="tiny", input=text, previous_response_id=response.id, max_output_tokens=4
        )
    after = upstream_requests(setup.front)
    grew = {name: after[name] - before.get(name, 0) for name in after if after[name] > before.get(name, 0)}
    assert list(grew.values()) == [4], grew


def test_the_uis_model_list_shows_remote_models_and_loads_them(setup):
    base = setup.front.api_base.replace(str(setup.front.api_port), str(setup.front.ui_port))
    ui = requests.Session()
    ui.headers["Origin"] = base
    models = {m["id"]: m for m in ui.get(base + "/ui/api/models", timeout=10).json()["models"]}
    assert (models["tiny"]["source"], models["tiny"]["upstreams"], models["tiny"]["file"]) == (
        "upstream",
        ["a", "b"],
        "",
    )
    status = ui.post(base + "/ui/api/models/load", json={"name": "Tiny Two Instruct"}, timeout=60).json()
    assert status["model"]["id"] == "Tiny Two Instruct" and status["model"]["n_ctx"] == 2048
    assert "tiny" in status["loaded"]  # remote models take no memory here: nothing was unloaded
    ui.post(base + "/ui/api/models/load", json={"name": "tiny"}, timeout=60).raise_for_status()


def test_local_and_remote_models_side_by_side(setup, fleet, model_dir):
    """A Hearth with its own models and a pool: both are served; a remote model takes the id
    it shares with a local one, which stays reachable by its file name."""
    both = fleet.front(
        {"a": setup.a.api_base},
        "--model-dir",
        str(model_dir),
        "--model",
        "tiny.gguf",
        "--ctx-size",
        "512",
        local=True,
    )
    both_ids = [m.id for m in client(both).models.list().data]
    assert {"tiny", "tiny.gguf", "Tiny Two Instruct", "Tiny Two Instruct.gguf"} <= set(both_ids)
    body = {"max_tokens": 8, "temperature": 0, "messages": [{"role": "user", "content": "Hi"}]}
    for model, loader in (
        ("tiny", "remote"),
        ("tiny.gguf", "llama.cpp"),
        ("Tiny Two Instruct", "remote"),
        ("Tiny Two Instruct.gguf", "llama.cpp"),
    ):
        reply = requests.post(both.api_url + "/chat/completions", json={"model": model, **body}, timeout=60)
        assert reply.status_code == 200, reply.text
        info = requests.get(both.api_url + "/internal/model/info", params={"model": model}, timeout=30).json()
        assert info["loader"] == loader, (model, info)
    assert requests.get(both.api_base + "/health", timeout=10).json()["upstreams"] == {"a": "up"}
