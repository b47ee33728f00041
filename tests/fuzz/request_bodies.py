"""Request bodies made from an endpoint's pydantic request model (its JSON schema), for the
fuzz tests: a small valid-looking body to carry hostile values, every field path the schema
declares (`messages.0.content`), and the body with one value put at one path.

Nothing here knows an endpoint by name, so an endpoint added to the table later is fuzzed
with a body made from its own model. A few conventions make such bodies likely to be served:
`model` (and `model_name`) name the test's model, the usual text fields get text, and token
limits stay small.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

TEXT_FIELDS = ("content", "text", "input", "prompt", "instruction", "query")
TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_new_tokens")
MAX_DEPTH = 5  # field paths deeper than this are not listed (the values put there go deeper)


@dataclass(frozen=True)
class Schema:
    root: dict

    @classmethod
    def of(cls, model: type[BaseModel]) -> Schema:
        return cls(model.model_json_schema())

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            node = self.root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def options(self, node: dict) -> list[dict]:
        """The alternatives of a node (anyOf/oneOf), resolved, null last."""
        node = self.resolve(node)
        choices = node.get("anyOf") or node.get("oneOf")
        if not choices:
            return [node]
        resolved = [self.resolve(c) for c in choices]
        return sorted(resolved, key=lambda c: c.get("type") == "null")


def example(schema: Schema, node: dict, *, name: str = "", model: str = "tiny", depth: int = 0) -> Any:
    """A small value that fits `node`: required fields (and the usual text fields) filled."""
    node = schema.options(node)[0]
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    if "default" in node and node["default"] is not None and name not in TEXT_FIELDS:
        return copy.deepcopy(node["default"])
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if name in ("model", "model_name"):
        return model
    if name in TOKEN_LIMITS:
        return 2
    if kind == "string" or (kind is None and name in TEXT_FIELDS):
        return "Hi"
    if kind == "integer":
        return max(1, node.get("minimum", 1))
    if kind == "number":
        return max(0.5, node.get("minimum", 0.5))
    if kind == "boolean":
        return False
    if kind == "array":
        items = node.get("items", {})
        return [example(schema, items, model=model, depth=depth + 1)] if depth < 8 else []
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        wanted = set(node.get("required", [])) | {f for f in TEXT_FIELDS if f in properties}
        wanted |= {f for f in TOKEN_LIMITS if f in properties}
        return {
            key: example(schema, properties[key], name=key, model=model, depth=depth + 1)
            for key in properties
            if key in wanted
        }
    return None


def base_body(model: type[BaseModel], served_model: str = "tiny") -> dict:
    schema = Schema.of(model)
    return example(schema, schema.root, model=served_model)


def field_paths(model: type[BaseModel]) -> list[tuple[str | int, ...]]:
    """Every field the schema declares, as paths (list items as index 0), to MAX_DEPTH."""
    schema = Schema.of(model)
    found: list[tuple[str | int, ...]] = []

    def walk(node: dict, path: tuple, depth: int, seen: frozenset) -> None:
        if depth > MAX_DEPTH:
            return
        for option in schema.options(node):
            title = option.get("title")
            if title in seen:  # a recursive schema: once is enough
                continue
            inner = seen | {title} if title else seen
            for key, child in option.get("properties", {}).items():
                found.append((*path, key))
                walk(child, (*path, key), depth + 1, inner)
            if option.get("type") == "array" and "items" in option:
                found.append((*path, 0))
                walk(option["items"], (*path, 0), depth + 1, inner)

    walk(schema.root, (), 0, frozenset())
    return list(dict.fromkeys(found))


def put(body: dict, path: tuple[str | int, ...], value: Any, model: type[BaseModel]) -> Any:
    """A copy of `body` with `value` at `path`; containers on the way are made from the schema
    (a field the body lacks gets its example value first)."""
    if not path:
        return value
    schema = Schema.of(model)
    body = copy.deepcopy(body)
    node: dict | None = schema.root
    container: Any = body
    for i, key in enumerate(path):
        node = _child(schema, node, key, path[i + 1 :])
        if isinstance(key, int):
            if not container:
                container.append(None)
            key = 0
        if i == len(path) - 1:
            container[key] = value
            break
        wanted = list if isinstance(path[i + 1], int) else dict
        current = container[key] if isinstance(container, list) else container.get(key)
        if not isinstance(current, wanted):
            current = example(schema, node or {}, name=str(key))
            if not isinstance(current, wanted):
                current = wanted()
            container[key] = current
        container = current
    return body


def _child(schema: Schema, node: dict | None, key: str | int, rest: tuple) -> dict | None:
    """The schema of `key` inside `node`: the first alternative that has it and can hold the
    rest of the path."""
    if node is None:
        return None
    for option in schema.options(node):
        if isinstance(key, int) and option.get("type") == "array":
            child = option.get("items", {})
        elif isinstance(key, str) and key in option.get("properties", {}):
            child = option["properties"][key]
        else:
            continue
        if not rest or _child(schema, child, rest[0], rest[1:]) is not None:
            return child
    return None


def dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path)
