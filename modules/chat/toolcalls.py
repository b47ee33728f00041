"""Reading tool calls out of model text, in the formats models actually write.

- Hermes / Qwen: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, any number, anywhere
- Llama 3.x JSON: the whole reply is `{"name": ..., "parameters": {...}}` (optionally after
  `<|python_tag|>`, several separated by `;`), or a JSON list of such objects
- Mistral: `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]` or `[TOOL_CALLS]f[ARGS]{...}`
- pythonic (Llama 3.2 / 4): the whole reply is `[f(a=1, b="x"), g()]`

Untagged formats count only when every name is one of the request's tools, so an ordinary
JSON answer is never mistaken for a call. Anything that does not parse is not a call: the
caller keeps it as plain content.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection
from dataclasses import dataclass

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
MISTRAL_MARKER = "[TOOL_CALLS]"
PYTHON_TAG = "<|python_tag|>"

_MISTRAL_ARGS = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\[CALL_ID\]\s*\w+\s*)?\[ARGS\]")


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str  # a JSON object, as text


def _call_from_object(obj: object) -> ParsedCall | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the OpenAI string form
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return ParsedCall(name, json.dumps(arguments, ensure_ascii=False))


def _calls_from_json(value: object) -> list[ParsedCall] | None:
    items = value if isinstance(value, list) else [value]
    calls = [_call_from_object(item) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


def _json_values(text: str) -> list[object] | None:
    """One or more JSON values separated by whitespace or `;`, or None."""
    decoder = json.JSONDecoder()
    values, pos = [], 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n;":
            pos += 1
        if pos == len(text):
            return values or None
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
        values.append(value)


def parse_tagged(body: str) -> list[ParsedCall] | None:
    """The call(s) inside one `<tool_call>...</tool_call>` block."""
    values = _json_values(body.strip())
    if values is None:
        return None
    calls: list[ParsedCall] = []
    for value in values:
        parsed = _calls_from_json(value)
        if parsed is None:
            return None
        calls += parsed
    return calls


def parse_whole(text: str, names: Collection[str]) -> list[ParsedCall] | None:
    """The calls when the whole reply is one of the untagged formats, else None."""
    text = text.strip()
    if text.startswith(MISTRAL_MARKER):
        return _parse_mistral(text[len(MISTRAL_MARKER) :], names)
    if text.startswith(PYTHON_TAG):
        text = text[len(PYTHON_TAG) :].strip()
    calls = None
    if text.startswith(("{", "[")):
        values = _json_values(text)
        if values is not None:
            parsed = [_calls_from_json(v) for v in values]
            if all(p is not None for p in parsed):
                calls = [c for p in parsed for c in p]  # type: ignore[union-attr]
        if calls is None and text.startswith("["):
            calls = _parse_pythonic(text)
    if not calls or any(c.name not in names for c in calls):
        return None
    return calls


def _parse_mistral(rest: str, names: Collection[str]) -> list[ParsedCall] | None:
    rest = rest.strip()
    if rest.startswith(("[", "{")):
        values = _json_values(rest)
        if values is None or len(values) != 1:
            return None
        calls = _calls_from_json(values[0])
    else:  # name[ARGS]{...} repeated (newer Mistral tokenizers)
        calls, decoder, pos = [], json.JSONDecoder(), 0
        while pos < len(rest):
            match = _MISTRAL_ARGS.match(rest, pos)
            if not match:
                return None
            try:
                arguments, pos = decoder.raw_decode(rest, match.end())
            except json.JSONDecodeError:
                return None
            call = _call_from_object({"name": match.group(1), "arguments": arguments})
            if call is None:
                return None
            calls.append(call)
            while pos < len(rest) and rest[pos].isspace():
                pos += 1
    if not calls or any(c.name not in names for c in calls):
        return None
    return calls


def _parse_pythonic(text: str) -> list[ParsedCall] | None:
    """`[f(a=1), g(b="x")]`: keyword arguments with literal values only."""
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None
    if not isinstance(tree, ast.List) or not tree.elts:
        return None
    calls = []
    for node in tree.elts:
        if not isinstance(node, ast.Call) or node.args:
            return None
        name = _dotted_name(node.func)
        if name is None:
            return None
        try:
            arguments = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
        if None in arguments:  # **kwargs
            return None
        try:
            calls.append(ParsedCall(name, json.dumps(arguments, ensure_ascii=False)))
        except (TypeError, ValueError):  # sets, bytes, complex: not JSON
            return None
    return calls


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted_name(node.value)):
        return f"{base}.{node.attr}"
    return None
