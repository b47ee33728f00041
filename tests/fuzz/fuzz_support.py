"""What the fuzz tests check every answer against: the error shape of each protocol."""

from __future__ import annotations

import requests


def error_shape(path: str) -> str:
    """The protocol whose error shape a path answers in: Anthropic's Messages API has its own."""
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def assert_error_shape(path: str, response: requests.Response) -> dict:
    """The error body in the shape of the path's protocol; returns the error object."""
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        path,
        response.status_code,
        response.headers,
        response.text[:300],
    )
    body = response.json()
    if error_shape(path) == "anthropic":
        assert body.get("type") == "error", body
        error = body["error"]
        assert isinstance(error.get("type"), str) and error["type"], body
        assert isinstance(error.get("message"), str) and error["message"], body
        return error
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    return error


def error_param(path: str, error: dict) -> str | None:
    """Where the error says the problem is (OpenAI: `param`; Anthropic names it in the message)."""
    if error_shape(path) == "anthropic":
        return error.get("param") or error["message"]
    return error["param"]
