"""HTTP plumbing shared by every API endpoint: JSON bodies, the error shape, API keys.

Every error leaves the API in OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, with the right status; bad input never turns into a 500 or an HTML page.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from modules.app import services
from modules.errors import HearthError, InvalidRequest, PayloadTooLarge, Unauthorized

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 8 * 1024 * 1024
Model = TypeVar("Model", bound=BaseModel)


# --- Request bodies ---------------------------------------------------------------------------

def read_body(limit: int = MAX_JSON_BYTES) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The request body is {length} bytes; the limit is {limit}.")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    return data


def read_json(model: type[Model]) -> Model:
    """The body as `model`, whatever the Content-Type says (GPT4All's cURL example sends none)."""
    raw = read_body()
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8 JSON.") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Invalid JSON in the request body: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return validate(model, data)


def validate(model: type[Model], data: dict) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_field(exc) from None


def invalid_field(exc: ValidationError) -> InvalidRequest:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    message = first["msg"]
    if first["type"] == "missing":
        return InvalidRequest(f"Missing required field '{where}'.", param=where)
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"Unknown field '{where}'.", param=where)
    return InvalidRequest(f"Invalid value for '{where}': {message}.", param=where)


# --- Errors -------------------------------------------------------------------------------------

def error_response(error: HearthError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


_HTTP_ERRORS = {
    404: "Unknown route {method} {path}. See /docs for the endpoints.",
    405: "Method {method} is not allowed on {path}.",
    413: "The request body is too large.",
}


def install_error_handlers(blueprint: Blueprint, is_api_request: Callable[[], bool]) -> None:
    """OpenAI-shaped errors for everything the blueprint (and its children) raise.

    Routing errors (unknown path, wrong method) happen before a blueprint is chosen, so
    they are handled app-wide, for requests `is_api_request` recognises.
    """

    @blueprint.errorhandler(HearthError)
    def hearth_error(error: HearthError):
        return error_response(error)

    @blueprint.errorhandler(ValidationError)
    def validation_error(error: ValidationError):
        return error_response(invalid_field(error))

    @blueprint.app_errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not is_api_request():
            return error
        template = _HTTP_ERRORS.get(error.code or 500, error.description or "HTTP error")
        wrapped = HearthError(template.format(method=request.method, path=request.path))
        wrapped.status = error.code or 500
        wrapped.type = "invalid_request_error" if wrapped.status < 500 else "server_error"
        return error_response(wrapped)

    @blueprint.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(HearthError("The server failed to handle this request."))


# --- API keys ------------------------------------------------------------------------------------

def presented_key() -> str | None:
    """The key the client sent: `Authorization: Bearer KEY`, or `x-api-key: KEY`."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def key_matches(expected: str, presented: str | None) -> bool:
    if not expected:
        return True
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())


def check_api_key() -> None:
    settings = services().settings
    keys = [k for k in (settings.api_key, settings.effective_admin_key) if k]
    if keys and not any(key_matches(k, presented_key()) for k in keys):
        raise Unauthorized()


def admin_only(view: Callable) -> Callable:
    """Model loading and other admin calls need the admin key (default: the API key)."""

    @wraps(view)
    def guarded(*args, **kwargs):
        if not key_matches(services().settings.effective_admin_key, presented_key()):
            raise Unauthorized("This endpoint needs the admin key.")
        return view(*args, **kwargs)

    return guarded
