"""Tool-call parsing, format by format, broken input included: it never raises."""

from __future__ import annotations

import json

import pytest

from modules.chat.toolcalls import ParsedCall, parse_tagged, parse_whole

NAMES = {"get_weather", "add"}


def calls(*pairs) -> list[ParsedCall]:
    return [ParsedCall(name, json.dumps(args)) for name, args in pairs]


def test_hermes_body():
    assert parse_tagged('\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n') == calls(
        ("add", {"a": 1, "b": 2})
    )
    # "parameters", string arguments and the OpenAI wrapper are read too
    assert parse_tagged('{"name": "add", "parameters": {"a": 1}}') == calls(("add", {"a": 1}))
    assert parse_tagged('{"name": "add", "arguments": "{\\"a\\": 1}"}') == calls(("add", {"a": 1}))
    assert parse_tagged('{"type": "function", "function": {"name": "add", "arguments": {}}}') == calls(
        ("add", {})
    )


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "add", "arguments": {"a": 1}',
        '{"name": "add", "arguments": [1]}',
        '{"arguments": {}}',
        "not json",
        "",
        '{"name": 5, "arguments": {}}',
        '{"name": "add", "arguments": "{broken"}',
    ],
)
def test_hermes_broken(body):
    assert parse_tagged(body) is None


def test_llama3_json():
    assert parse_whole('{"name": "get_weather", "parameters": {"city": "Oslo"}}', NAMES) == calls(
        ("get_weather", {"city": "Oslo"})
    )
    assert parse_whole('<|python_tag|>{"name": "add", "parameters": {"a": 1}}', NAMES) == calls(
        ("add", {"a": 1})
    )
    two = '{"name": "add", "parameters": {"a": 1}}; {"name": "add", "parameters": {"a": 2}}'
    assert parse_whole(two, NAMES) == calls(("add", {"a": 1}), ("add", {"a": 2}))
    assert parse_whole('[{"name": "add", "arguments": {}}]', NAMES) == calls(("add", {}))


def test_untagged_json_must_name_a_known_tool():
    assert parse_whole('{"name": "Alice", "parameters": {"age": 3}}', NAMES) is None
    assert parse_whole('{"name": "add", "parameters": {}} and more', NAMES) is None
    assert parse_whole('{"name": "add", "parameters": {', NAMES) is None


def test_mistral():
    assert parse_whole('[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1}}]', NAMES) == calls(
        ("add", {"a": 1})
    )
    assert parse_whole('[TOOL_CALLS]add[ARGS]{"a": 1}', NAMES) == calls(("add", {"a": 1}))
    assert parse_whole('[TOOL_CALLS]add[ARGS]{"a": 1}get_weather[ARGS]{}', NAMES) == calls(
        ("add", {"a": 1}), ("get_weather", {})
    )
    assert parse_whole('[TOOL_CALLS] [{"name": "add", "arguments": {"a": ', NAMES) is None
    assert parse_whole("[TOOL_CALLS]add[ARGS]{oops}", NAMES) is None


def test_pythonic():
    assert parse_whole('[get_weather(city="Paris"), add(a=1, b=2.5)]', NAMES) == calls(
        ("get_weather", {"city": "Paris"}), ("add", {"a": 1, "b": 2.5})
    )
    assert parse_whole("[add()]", NAMES) == calls(("add", {}))
    assert parse_whole("[add(a=[1, {'x': None}])]", NAMES) == calls(("add", {"a": [1, {"x": None}]}))


@pytest.mark.parametrize(
    "text",
    [
        "[add(1)]",
        "[add(a=b)]",
        "[add(a=1)",
        "[unknown(a=1)]",
        "[1, 2]",
        "[]",
        "[add(**k)]",
        "[add(a={1, 2})]",
        "[__import__('os').system('x')]",
        "[add(a=1)] trailing",
    ],
)
def test_pythonic_refusals(text):
    assert parse_whole(text, NAMES) is None


def test_plain_text_is_no_call():
    assert parse_whole("The weather is nice.", NAMES) is None
    assert parse_whole("", NAMES) is None
