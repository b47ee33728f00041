"""/openapi.json, built from the endpoint table and the typed models, and /docs, which
renders it in the browser with a small page of its own (no CDN: it works offline)."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .bodies import ErrorResponse

DOCS_PAGE = Path(__file__).with_name("docs.html")
_PATH_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
ERROR_STATUSES = {
    "400": "Invalid JSON or an invalid field (the error names it in `param`).",
    "401": "Missing or wrong API key.",
    "403": "A web page of a site --cors-origins does not allow; for admin calls without an admin "
    "key, a client that is not on this machine.",
    "404": "Unknown model, route or request id.",
    "413": "The request body is larger than 8 MiB.",
    "503": "A model is loading.",
}

DESCRIPTION = """\
Hearth's OpenAI-compatible API. Send `Authorization: Bearer KEY` (or `x-api-key: KEY`) when
the server runs with `--api-key`; /health, /openapi.json and /docs need no key. The admin
calls (`x-hearth-access: admin`: model list/load/unload) need the admin key (`--admin-key`,
default: the API key), or without any key come only from this machine. Browser pages of
other sites than this machine's are refused unless `--cors-origins` allows them.

Streaming (`"stream": true`) answers with server-sent events: `data: {json}` chunks, then
`data: [DONE]`, for every client. Every error has OpenAI's shape:
`{"error": {"message", "type", "param", "code"}}`.
"""


def openapi_path(rule: str) -> str:
    return _PATH_PARAM.sub(r"{\1}", rule)


def build_document(endpoints) -> dict:
    """The OpenAPI 3.1 description of `endpoints` (rows of api.ENDPOINTS)."""
    wanted: list[tuple[type[BaseModel], str]] = [(ErrorResponse, "serialization")]
    for e in endpoints:
        if e.request:
            wanted.append((e.request, "validation"))
        for model in (e.response, e.stream):
            if model:
                wanted.append((model, "serialization"))
    refs, schemas = models_json_schema(
        list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict] = {}
    for e in endpoints:
        paths.setdefault(openapi_path(e.path), {})[e.method.lower()] = _operation(e, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Hearth API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(e, refs: dict) -> dict:
    operation: dict = {
        "summary": e.summary,
        "operationId": e.view.__name__,
        "x-hearth-access": e.access,
        "security": [] if e.access == "public" else [{"bearer": []}],
    }
    names = _PATH_PARAM.findall(e.path)
    if names:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names
        ]
    if e.request:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(e.request, "validation")]}},
        }
    content: dict = {}
    if e.response:
        content["application/json"] = {"schema": refs[(e.response, "serialization")]}
    if e.stream:
        content["text/event-stream"] = {
            "schema": refs[(e.stream, "serialization")],
            "description": 'With "stream": true: one `data:` event per chunk, then `data: [DONE]`.',
        }
    responses: dict = {"200": {"description": "OK", **({"content": content} if content else {})}}
    error = {"content": {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}}}
    for status, why in ERROR_STATUSES.items():
        if status == "400" and not e.request:
            continue
        if status == "401" and e.access == "public":
            continue
        responses[status] = {"description": why, **error}
    operation["responses"] = responses
    return operation


def document_view() -> Response:
    from .api import CORE_ENDPOINTS, ENDPOINTS

    return jsonify(build_document((*ENDPOINTS, *CORE_ENDPOINTS)))


def docs_page() -> Response:
    return Response(DOCS_PAGE.read_text(encoding="utf-8"), mimetype="text/html")
