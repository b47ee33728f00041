"""GBNF grammars (llama.cpp's format) that force the model to call a tool.

When `tool_choice` is "required" or names a function, the engine samples under a grammar
that only allows one call in the Hermes format the tool preamble teaches:

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

with the arguments shaped by the function's JSON schema (objects with their properties,
strings, numbers, integers, booleans, null, enums, consts, arrays, anyOf/oneOf; anything
else is any JSON value). One call, then the grammar is complete and generation ends.

The arguments are compact JSON: no whitespace between tokens. Left free, a small model
pretty-prints (`{\n    "name": ...`), and a client's small `max_tokens` then cuts the call
before its closing tag (LangChain's structured output sends 40).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PRIMITIVES = {
    "ws": '""',
    "string": r'"\"" char* "\""',
    "char": r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "integer": r'"-"? ("0" | [1-9] [0-9]{0,15})',
    "number": r'"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?',
    "boolean": r'"true" | "false"',
    "null": r'"null"',
    "value": "object | array | string | number | boolean | null",
    "object": r'"{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"',
    "array": r'"[" ws ( value ( ws "," ws value )* )? ws "]"',
}
_TYPE_RULES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


def literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "\\r").replace("\t", "\\t") + '"'


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def add(self, name: str, body: str) -> str:
        name = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-").lower() or "r"
        base, i = name, 1
        while name in self.rules or name in _PRIMITIVES:
            if self.rules.get(name) == body:
                return name
            i += 1
            name = f"{base}-{i}"
        self.rules[name] = body
        return name

    def schema(self, schema: Any, name: str, depth: int = 0) -> str:
        """A rule (name) matching JSON values valid against `schema` (a practical subset)."""
        if not isinstance(schema, Mapping) or depth > 12:
            return "value"
        if "const" in schema:
            return self.add(name, literal(json.dumps(schema["const"], ensure_ascii=False)))
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = [literal(json.dumps(v, ensure_ascii=False)) for v in schema["enum"]]
            return self.add(name, " | ".join(options))
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                alts = [self.schema(s, f"{name}-{i}", depth + 1) for i, s in enumerate(schema[key])]
                return self.add(name, " | ".join(alts))
        kind = schema.get("type")
        if isinstance(kind, list):
            alts = [self.schema({**schema, "type": k}, f"{name}-{k}", depth + 1) for k in kind]
            return self.add(name, " | ".join(alts))
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, name, depth)
        if kind == "array":
            item = self.schema(schema.get("items"), f"{name}-item", depth + 1)
            return self.add(name, f'"[" ws ( {item} ( ws "," ws {item} )* )? ws "]"')
        return _TYPE_RULES.get(kind, "value") if isinstance(kind, str) else "value"

    def _object(self, schema: Mapping, name: str, depth: int) -> str:
        properties = schema.get("properties")
        if isinstance(properties, Mapping) and not properties and not schema.get("additionalProperties"):
            # `"properties": {}`: a tool that takes no arguments; the call writes `{}`
            return self.add(name, '"{" ws "}"')
        if not isinstance(properties, Mapping) or not properties:
            return "object"
        required = [k for k in properties if k in (schema.get("required") or ())]
        optional = [k for k in properties if k not in required]
        pair = {
            key: self.add(
                f"{name}-{key}-kv",
                f'{literal(json.dumps(key))} ws ":" ws '
                + self.schema(properties[key], f"{name}-{key}", depth + 1),
            )
            for key in properties
        }
        body = ' ws "," ws '.join(pair[k] for k in required)
        if optional:
            # Optional properties in their schema order, each present or not, commas right.
            def chain(keys: Sequence[str]) -> str:
                first, rest = keys[0], keys[1:]
                tail = f' ( ws "," ws {pair[first]} )?'
                return tail + (f" {chain(rest)}" if rest else "")

            choices = [
                pair[optional[i]] + (f" {chain(optional[i + 1 :])}" if i + 1 < len(optional) else "")
                for i in range(len(optional))
            ]
            alternatives = " | ".join(f"( {c} )" for c in choices)
            body = f'{body} ( ws "," ws ( {alternatives} ) )?' if body else f"( {alternatives} )?"
        return self.add(name, f'"{{" ws {body} ws "}}"')

    def text(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{k} ::= {v}" for k, v in self.rules.items()]
        lines += [f"{k} ::= {v}" for k, v in _PRIMITIVES.items()]
        return "\n".join(lines) + "\n"


def tool_call_grammar(tools: Sequence[Mapping], only: str | None = None) -> str:
    """A grammar for exactly one Hermes-style call to one of `tools` (or to `only`)."""
    builder = _Builder()
    calls = []
    for tool in tools:
        function = tool["function"]
        if only is not None and function["name"] != only:
            continue
        arguments = builder.schema(function.get("parameters"), f"{function['name']}-args")
        if arguments == "value":  # no usable schema: still insist on an object
            arguments = "object"
        head = literal('{"name": ' + json.dumps(function["name"]) + ', "arguments": ')
        calls.append(builder.add(f"call-{function['name']}", f'{head} {arguments} "}}"'))
    if not calls:
        raise ValueError("no tool to call")
    builder.add("call", " | ".join(calls))
    return builder.text(r'"<tool_call>\n" call "\n</tool_call>"')
