"""POST /v1/chat/completions with the official client: whole and streamed answers, n,
logprobs, JSON output, tools, Hearth's chat fields, and OpenAI's schemas."""

from __future__ import annotations

import json

import jsonschema
import pytest
import requests
from api_helpers import post
from openai_schemas import validator
from stream_events import chunks

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a color."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["unit"],
            "additionalProperties": False,
        },
    },
}


def chat_prompt_tokens(api, **body) -> int:
    prompt = post(api, "/v1/internal/chat-prompt", {"messages": MESSAGES, **body}).json()["prompt"]
    return post(api, "/v1/internal/encode", {"text": prompt}).json()["length"]


def test_whole_answer_in_openai_shape_with_exact_usage(api, client):
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, temperature=0)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 8
    assert reply.usage.prompt_tokens == chat_prompt_tokens(api)
    raw = post(api, "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 8, "temperature": 0})
    validator("CreateChatCompletionResponse").validate(raw.json())
    assert raw.json()["choices"][0]["message"]["content"] == choice.message.content
    assert raw.json()["choices"][0]["message"]["annotations"] == []  # as OpenAI's messages carry


def test_content_parts_are_read_as_text(client):
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "Name a "}, {"type": "text", "text": "color."}]}
    ]
    joined = [{"role": "user", "content": "Name a color."}]
    a = client.chat.completions.create(model="tiny", messages=parts, max_tokens=5, temperature=0)
    b = client.chat.completions.create(model="tiny", messages=joined, max_tokens=5, temperature=0)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_stream_role_first_finish_last_done_and_same_text(api, client):
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10, temperature=0)
    stream = list(
        client.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=10, temperature=0, stream=True
        )
    )
    assert stream[0].choices[0].delta.role == "assistant" and stream[0].choices[0].delta.content == ""
    assert stream[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].finish_reason is None for c in stream[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in stream) == whole.choices[0].message.content
    assert len({c.id for c in stream}) == 1
    # on the wire: schema-valid chunks, then [DONE]
    response = requests.post(
        api.api_url + "/chat/completions",
        stream=True,
        timeout=30,
        json={
            "messages": MESSAGES,
            "max_tokens": 5,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    parts, done = chunks(response)
    assert done
    check = validator("CreateChatCompletionStreamResponse")
    for part in parts:
        check.validate(part)
    # the choice's last chunk carries the message's (empty) annotations; no other chunk does
    deltas = [part["choices"][0]["delta"] for part in parts if part["choices"]]
    assert deltas[-1]["annotations"] == [] and all("annotations" not in d for d in deltas[:-1])
    assert parts[-1]["choices"] == [] and parts[-1]["usage"]["completion_tokens"] == 5
    assert parts[-1]["usage"]["prompt_tokens"] == chat_prompt_tokens(api)


def test_n_choices_streamed_and_whole(client):
    whole = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=6, n=3, seed=3, temperature=1.0
    )
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert whole.usage.completion_tokens == 18
    one = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=1)
    assert whole.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt is counted once
    stream = list(
        client.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=6, n=3, seed=3, temperature=1.0, stream=True
        )
    )
    texts = {0: "", 1: "", 2: ""}
    roles, finishes = [], []
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.delta.role:
                roles.append(choice.index)
            if choice.finish_reason:
                finishes.append(choice.index)
    assert sorted(roles) == sorted(finishes) == [0, 1, 2]
    assert [texts[i] for i in range(3)] == [c.message.content for c in whole.choices]
    assert len(set(texts.values())) > 1


def test_logprobs_cover_the_content(api, client):
    reply = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2
    )
    content = reply.choices[0].logprobs.content
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and bytes(entry.bytes).decode() == entry.token
        assert len(entry.top_logprobs) == 2 and entry.top_logprobs[0].logprob == entry.logprob
    plain = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=3)
    assert plain.choices[0].logprobs is None
    stream = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
        stream=True,
    )
    streamed = [
        t.token for c in stream for t in (c.choices[0].logprobs.content if c.choices[0].logprobs else [])
    ]
    assert streamed == [t.token for t in content]


SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "level": {"type": "integer", "minimum": 1, "maximum": 5},
        "color": {"type": "string", "enum": ["red", "green"]},
    },
    "required": ["ok", "level", "color"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_follows_the_schema(client, seed):
    reply = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=200,
        seed=seed,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}},
    )
    data = json.loads(reply.choices[0].message.content)
    jsonschema.validate(data, SCHEMA)
    assert reply.choices[0].finish_reason == "stop"


def test_json_object_output_is_a_json_object(client):
    reply = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=600,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert reply.choices[0].finish_reason == "stop", reply.choices[0].message.content
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


@pytest.mark.parametrize("seed", [1, 2])
def test_json_object_with_a_schema_llama_cpp_python_style(client, seed):
    reply = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=200,
        seed=seed,
        response_format={"type": "json_object", "schema": SCHEMA},
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)


def test_forced_tool_call_whole_and_streamed(client):
    kwargs = {
        "model": "tiny",
        "max_tokens": 200,
        "seed": 1,
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    reply = client.chat.completions.create(**kwargs)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments)["unit"] in ("c", "f")
    stream = list(client.chat.completions.create(**kwargs, stream=True))
    deltas = [t for c in stream for t in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas) == call.function.arguments
    assert stream[-1].choices[0].finish_reason == "tool_calls"


def test_legacy_functions_get_a_function_call_back_and_can_send_it_again(api):
    """openai<1 and old LangChain ask with `functions` and read `message.function_call`."""
    body = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "functions": [WEATHER_TOOL["function"]],
        "function_call": {"name": "get_weather"},
        "max_tokens": 200,
        "seed": 1,
    }
    whole = post(api, "/v1/chat/completions", body).json()
    validator("CreateChatCompletionResponse").validate(whole)
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "function_call" and "tool_calls" not in choice["message"]
    call = choice["message"]["function_call"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"])["unit"] in ("c", "f")

    events, _ = chunks(post(api, "/v1/chat/completions", {**body, "stream": True}, stream=True))
    for event in events:
        validator("CreateChatCompletionStreamResponse").validate(event)
    deltas = [c["choices"][0]["delta"] for c in events if c["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    streamed = [d["function_call"] for d in deltas if "function_call" in d]
    assert streamed[0]["name"] == "get_weather"
    assert "".join(f.get("arguments", "") for f in streamed) == call["arguments"]
    assert events[-1]["choices"][0]["finish_reason"] == "function_call"

    # The call and its result, sent back in the legacy shape, reach the prompt.
    follow_up = [
        *body["messages"],
        {"role": "assistant", "content": None, "function_call": call},
        {"role": "function", "name": "get_weather", "content": "21 degrees and sunny"},
    ]
    prompt = post(api, "/v1/internal/chat-prompt", {"messages": follow_up, "functions": body["functions"]})
    text = prompt.json()["prompt"]
    assert "get_weather" in text and call["arguments"] in text and "21 degrees and sunny" in text


def test_tool_results_go_back_into_the_prompt(api):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"unit": "c"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees"},
    ]
    prompt = post(api, "/v1/internal/chat-prompt", {"messages": messages, "tools": [WEATHER_TOOL]}).json()[
        "prompt"
    ]
    assert "21 degrees" in prompt and "get_weather" in prompt
    reply = post(
        api, "/v1/chat/completions", {"messages": messages, "tools": [WEATHER_TOOL], "max_tokens": 3}
    )
    assert reply.status_code == 200, reply.text


def test_chat_prompt_is_exactly_what_the_model_reads(api):
    prompt = post(api, "/v1/internal/chat-prompt", {"messages": MESSAGES}).json()["prompt"]
    assert prompt == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n"
    )
    raw = post(api, "/v1/completions", {"prompt": prompt, "max_tokens": 6, "temperature": 0}).json()
    chat = post(api, "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 6, "temperature": 0}).json()
    assert chat["choices"][0]["message"]["content"] == raw["choices"][0]["text"]
    assert chat["usage"]["prompt_tokens"] == raw["usage"]["prompt_tokens"]


def test_hearth_chat_fields(api):
    def prompt(**fields) -> str:
        response = post(
            api, "/v1/internal/chat-prompt", {"messages": [{"role": "user", "content": "Hi"}], **fields}
        )
        assert response.status_code == 200, response.text
        return response.json()["prompt"]

    chat = prompt(mode="chat", character="Ada", name1="Sam")
    assert chat.rstrip().endswith("Ada:") and "Sam: Hi" in chat
    assert prompt(mode="chat", user_name="Kim", bot_name="Bob", context="A plain talk.").startswith(
        "A plain talk."
    )
    alpaca = prompt(instruction_template="Alpaca")
    assert "### Instruction:" in alpaca and "### Response:" in alpaca
    custom = prompt(instruction_template_str="{% for m in messages %}[{{ m['content'] }}]{% endfor %}>")
    assert custom == "[Hi]>"
    instruct_chat = prompt(
        mode="chat-instruct", character="Ada", chat_instruct_command="Reply as <|character|>.\n\n<|prompt|>"
    )
    assert "Reply as Ada." in instruct_chat
    continued = prompt(
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello th"}],
        continue_=True,
    )
    assert continued.endswith("Hello th")
    reply = post(
        api,
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "mode": "chat",
            "character": "Ada",
            "max_tokens": 5,
        },
    )
    assert reply.status_code == 200, reply.text


def test_a_conversation_too_long_for_the_context_says_how_much_was_dropped(api, client):
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Message {i}: " + "words and more " * 12}
        for i in range(41)
    ]
    dropped = post(api, "/v1/internal/chat-prompt", {"messages": turns, "max_tokens": 5}).json()
    assert dropped["dropped_messages"] > 0
    assert "Message 0:" not in dropped["prompt"] and "Message 40:" in dropped["prompt"]

    reply = client.chat.completions.create(model="tiny", messages=turns, max_tokens=5, temperature=0)
    assert reply.model_extra["dropped_messages"] == dropped["dropped_messages"]
    stream = client.chat.completions.create(model="tiny", messages=turns, max_tokens=5, stream=True)
    marks = [
        c.model_extra.get("dropped_messages") for c in stream if c.choices and c.choices[0].finish_reason
    ]
    assert marks == [dropped["dropped_messages"]]

    short = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
    assert "dropped_messages" not in short.model_extra
    assert post(api, "/v1/internal/chat-prompt", {"messages": MESSAGES}).json()["dropped_messages"] == 0
