"""OpenAI's own response schemas, to validate Hearth's answers against.

The official API description (openai-openapi.yaml, 3 MB) lives outside the repository
(../shared/ beside the checkout). The few schemas the tests need, with everything they
reference, are kept in data/openai-schemas.json so the suite runs on a fresh clone;
`test_vendored_schemas_match_the_official_file` checks the copy against the original
whenever the original is there. Regenerate with `python tests/api/openai_schemas.py`.
"""

from __future__ import annotations

import copy
import json
import os
import re
from functools import cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENDORED = Path(__file__).with_name("data") / "openai-schemas.json"
ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "ListModelsResponse",
    "Model",
    "CreateChatCompletionRequest",
    "CreateCompletionRequest",
    "Response",
    "ResponseStreamEvent",
    "ResponseItemList",
    "TokenCountsResource",
    "CreateResponse",
)
_REF = re.compile(r"^#/components/schemas/(.+)$")


def official_spec_path() -> Path | None:
    """The official file: $OPENAI_OPENAPI_SPEC, or ../shared/openai-openapi.yaml beside the
    checkout (or beside the folder holding git worktrees)."""
    if os.environ.get("OPENAI_OPENAPI_SPEC"):
        return Path(os.environ["OPENAI_OPENAPI_SPEC"])
    for base in (PROJECT_ROOT.parent, PROJECT_ROOT.parent.parent):
        path = base / "shared" / "openai-openapi.yaml"
        if path.is_file():
            return path
    return None


def load_official(path: Path) -> dict:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


def extract(spec: dict, roots=ROOTS) -> dict:
    """The named schemas and every schema they reference, as {"components": {"schemas": ...}}."""
    schemas = spec["components"]["schemas"]
    wanted, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted[name] = schemas[name]
        todo.extend(_refs(schemas[name]))
    return {"components": {"schemas": dict(sorted(wanted.items()))}}


def _refs(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and (m := _REF.match(value)):
                found.append(m.group(1))
            else:
                found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


def vendored() -> dict:
    return json.loads(VENDORED.read_text(encoding="utf-8"))


def _as_json_schema(node):
    """OpenAPI's `nullable: true` (3.0 style, still used in places) as JSON Schema's null type."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _as_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = [*types, "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        if "$ref" in node or "anyOf" in node or "oneOf" in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@cache
def _document() -> dict:
    return _as_json_schema(copy.deepcopy(vendored()))


def validator(name: str):
    """A jsonschema validator for components/schemas/<name>."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = _document()
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openai", resource)
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


def event_validator(event_type: str):
    """The validator of the one stream event schema whose `type` is `event_type`: its errors
    say more than those of the union of every event."""
    for name, schema in vendored()["components"]["schemas"].items():
        kind = schema.get("properties", {}).get("type", {}) if isinstance(schema, dict) else {}
        if name.endswith("Event") and kind.get("enum") == [event_type]:
            return validator(name)
    raise KeyError(f"no event schema of type {event_type!r}")


def request_fields(name: str) -> set[str]:
    """The top-level fields of an official request schema (with its allOf parts)."""
    schemas = vendored()["components"]["schemas"]
    fields: set[str] = set()

    def walk(schema: dict) -> None:
        if "$ref" in schema:
            walk(schemas[_REF.match(schema["$ref"]).group(1)])
        fields.update(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            walk(part)

    walk(schemas[name])
    return fields


if __name__ == "__main__":
    source = official_spec_path()
    if source is None:
        raise SystemExit("openai-openapi.yaml not found; set OPENAI_OPENAPI_SPEC")
    VENDORED.parent.mkdir(exist_ok=True)
    VENDORED.write_text(json.dumps(extract(load_official(source)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {VENDORED} from {source}")
