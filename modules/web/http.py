"""Request and response plumbing for the UI's JSON endpoints: bodies and error messages.

Every failure leaves as `{"error": {"message": ...}}` with a 4xx status, for the page to show.
"""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from modules.errors import HearthError, InvalidRequest, PayloadTooLarge
from modules.inbound import json_object

from .pictures import MAX_UPLOAD_BYTES

MAX_JSON_BYTES = 1024 * 1024
MAX_TEXT_JSON_BYTES = 12 * 1024 * 1024  # a notebook's text, a message's files: 2 million characters
Model = TypeVar("Model", bound=BaseModel)


def error_response(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error={"message": message}), status


def install_error_handlers(api: Blueprint) -> None:
    @api.errorhandler(HearthError)
    def hearth_error(error: HearthError):
        response, status = error_response(error.message, error.status)
        response.headers.update(error.headers)
        return response, status

    @api.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            400: "The request could not be read.",
            404: "Not found.",
            405: f"{request.method} is not allowed here.",
            413: f"The upload is too large (the limit is {_upload_limit() // (1024 * 1024)} MB).",
        }
        return error_response(
            messages.get(error.code or 500, error.description or "Error."), error.code or 500
        )


def _upload_limit() -> int:
    """The endpoint's upload limit (its body limit less the room kept for form fields)."""
    limit = request.max_content_length
    return max(limit - 1024 * 1024, 1) if limit else MAX_UPLOAD_BYTES


def json_body(model: type[Model], limit: int = MAX_JSON_BYTES) -> Model:
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The request is too large (the limit is {limit // (1024 * 1024)} MB).")
    return checked(model, json_object(raw or b"{}"))


def checked(model: type[Model], data: dict) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        raise InvalidRequest(f"{where}: {first['msg']}.", param=where) from None
