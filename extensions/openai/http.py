"""HTTP plumbing shared by every API endpoint: JSON bodies, the error shape, API keys.

Every error leaves the API in OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, with the right status; bad input never turns into a 500 or an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from modules.app import services
from modules.errors import HearthError, InvalidRequest, PayloadTooLarge
from modules.inbound import json_object
from modules.serving import access

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 8 * 1024 * 1024
DRAIN_LIMIT = 64 * 1024 * 1024  # read (and drop) this much of an oversized body, so the client sees the 413
Model = TypeVar("Model", bound=BaseModel)


# --- Request bodies ---------------------------------------------------------------------------


def read_body(limit: int = MAX_JSON_BYTES) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        _drain(length if length <= DRAIN_LIMIT else 0)
        raise PayloadTooLarge(f"The request body is {length} bytes; the limit is {limit}.")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        _drain(DRAIN_LIMIT)
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    return data


def _drain(most: int) -> None:
    """Read and drop the rest of the body: a client still sending when the 413 arrives would
    see a reset connection instead of the answer."""
    while most > 0:
        chunk = request.stream.read(min(1 << 16, most))
        if not chunk:
            return
        most -= len(chunk)


def read_json(model: type[Model], *, allow_empty: bool = False) -> Model:
    """The body as `model`, whatever the Content-Type says (GPT4All's cURL example sends none).

    With `allow_empty`, an empty body means `{}` (for endpoints whose fields are all optional).
    The body is parsed by `inbound.json_object`: strict JSON (trailing commas forgiven), every
    string following the text rule, nesting within the depth limit.
    """
    raw = read_body()
    if not raw.strip():
        if allow_empty:
            return validate(model, {})
        raise InvalidRequest("The request body is empty; send a JSON object.")
    return validate(model, json_object(raw))


def validate(model: type[Model], data: dict) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_field(exc, data) from None


def invalid_field(exc: ValidationError, data: object = None) -> InvalidRequest:
    errors = exc.errors(include_url=False)
    # A value that matches no member of a union fails once per member; the deepest failure
    # that is not a plain type mismatch says most (`prompt.1: must be >= 0`, not `prompt:
    # must be a string`).
    first = max(errors, key=lambda error: (len(error["loc"]), not error["type"].endswith("_type")))
    where = _field_path(first["loc"], data) or "body"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return InvalidRequest(f"Missing required field '{where}'.", param=where)
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"Unknown field '{where}'.", param=where)
    return InvalidRequest(f"Invalid value for '{where}': {message}.", param=where)


def _field_path(loc: tuple, data: object) -> str:
    """The error's location as the client wrote it (`messages.0.role`). pydantic also names
    the union member it tried (`stop.list[str]`); such parts are not in the data, so they go."""
    if data is None:
        return ".".join(str(part) for part in loc)
    parts, node = [], data
    for i, part in enumerate(loc):
        if _has(node, part):
            parts.append(str(part))
            node = node[part]
        elif i + 1 < len(loc) and _has(node, loc[i + 1]):
            continue  # the member of a tagged union pydantic tried (`input.0.message.role`)
        elif isinstance(node, dict) and isinstance(part, str) and not _is_type_tag(part):
            parts.append(part)  # a missing field: name it
            break
    return ".".join(parts)


def _has(node: object, part: object) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _is_type_tag(part: str) -> bool:
    return part in ("str", "int", "float", "bool") or "[" in part or "-" in part


# --- Responses and errors ------------------------------------------------------------------------


def json_response(body: BaseModel) -> Response:
    """A typed response body as JSON (fields a model marks to omit when empty are left out)."""
    return jsonify(body.model_dump(mode="json"))


ErrorShape = Callable[[HearthError], dict]


def error_response(error: HearthError, shape: ErrorShape = HearthError.to_dict) -> Response:
    response = jsonify(shape(error))
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


_HTTP_ERRORS = {
    404: "Unknown route {method} {path}. See /docs for the endpoints.",
    405: "Method {method} is not allowed on {path}.",
    413: "The request body is too large.",
}


def install_error_handlers(
    blueprint: Blueprint, is_api_request: Callable[[], bool], shape: Callable[[], ErrorShape]
) -> None:
    """Errors for everything the blueprint (and its children) raise, in the shape of the
    request's protocol (`shape()`: OpenAI's, or Anthropic's on its routes).

    Routing errors (unknown path, wrong method) happen before a blueprint is chosen, so
    they are handled app-wide, for requests `is_api_request` recognises.
    """

    def respond(error: HearthError) -> Response:
        return error_response(error, shape())

    @blueprint.errorhandler(HearthError)
    def hearth_error(error: HearthError):
        return respond(error)

    @blueprint.errorhandler(ValidationError)
    def validation_error(error: ValidationError):
        return respond(invalid_field(error))

    def http_error(error: HTTPException):
        if not is_api_request():
            return error
        template = _HTTP_ERRORS.get(error.code or 500, error.description or "HTTP error")
        wrapped = HearthError(template.format(method=request.method, path=request.path))
        wrapped.status = error.code or 500
        wrapped.type = "invalid_request_error" if wrapped.status < 500 else "server_error"
        return respond(wrapped)

    # Routing errors are app-wide; the blueprint's own handler keeps HTTP errors its views
    # raise from falling through to the catch-all below.
    blueprint.app_errorhandler(HTTPException)(http_error)
    blueprint.errorhandler(HTTPException)(http_error)

    @blueprint.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error in %s %s", request.method, request.path)
        return respond(HearthError("The server failed to handle this request."))


# --- API keys ------------------------------------------------------------------------------------

# The keys and who may manage Hearth are decided in modules/serving/access.py, for the API,
# the UI and /metrics alike; these names stay for the views and extensions that import them.
presented_key = access.presented_key
key_matches = access.key_matches


def check_api_key() -> None:
    """With --api-key, every call needs it (or the admin key). An admin key alone guards only
    the admin calls."""
    access.require_api_key(services().settings)


def check_admin() -> None:
    """An admin call: the admin key, or (without one) this machine and no other site's page."""
    access.require_admin(services().settings)


def admin_only(view: Callable) -> Callable:
    """Mark an extension's API route as an admin call (the API's own say so in its table)."""
    return access.management(view)
