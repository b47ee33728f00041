"""The OpenAI operations Hearth serves, from OpenAI's own API description, for schemathesis.

The official file (openai-openapi.yaml, 3 MB) lives outside the repository; these operations,
with every component they reference, are kept in data/openai-operations.json so that the suite
runs on a fresh clone (tests/api/openai_schemas.py does the same for the response schemas).
Regenerate with `python tests/fuzz/openai_operations.py` (it finds the file as that module does).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

VENDORED = Path(__file__).with_name("data") / "openai-operations.json"
# (path, method): what the tests run against a server of the tiny model. Left out: audio
# (speech synthesis of up to 4096 generated characters takes minutes here; transcription
# needs real audio) and the operations Hearth does not serve.
OPERATIONS = (
    ("/chat/completions", "post"),
    ("/completions", "post"),
    ("/models", "get"),
    ("/models/{model}", "get"),
    ("/embeddings", "post"),
    ("/moderations", "post"),
    ("/images/generations", "post"),
    ("/responses", "post"),
    ("/responses/input_tokens", "post"),
    ("/responses/{response_id}", "get"),
    ("/responses/{response_id}", "delete"),
    ("/responses/{response_id}/input_items", "get"),
    ("/responses/{response_id}/cancel", "post"),
)
_REF = re.compile(r"^#/components/(\w+)/(.+)$")


def extract(spec: dict) -> dict:
    """The operations, and every component they reference, as a smaller OpenAPI document."""
    paths: dict = {}
    for path, method in OPERATIONS:
        operation = {k: v for k, v in spec["paths"][path][method].items() if not k.startswith("x-")}
        paths.setdefault(path, {})[method] = operation
    components: dict = {}
    todo = _refs(paths)
    while todo:
        kind, name = todo.pop()
        if name in components.get(kind, {}):
            continue
        node = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        todo.extend(_refs(node))
    components["securitySchemes"] = spec["components"]["securitySchemes"]
    return {
        "openapi": spec["openapi"],
        "info": {"title": "OpenAI operations served by Hearth", "version": spec["info"]["version"]},
        "servers": spec["servers"],
        "security": spec.get("security", []),
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def _refs(node) -> list[tuple[str, str]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and (match := _REF.match(value)):
                found.append((match.group(1), match.group(2)))
            else:
                found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


def vendored() -> dict:
    return json.loads(VENDORED.read_text(encoding="utf-8"))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
    from openai_schemas import load_official, official_spec_path

    source = official_spec_path()
    if source is None:
        raise SystemExit("openai-openapi.yaml not found; set OPENAI_OPENAPI_SPEC")
    VENDORED.parent.mkdir(exist_ok=True)
    VENDORED.write_text(json.dumps(extract(load_official(source)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {VENDORED} from {source}")
