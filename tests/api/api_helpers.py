"""Small helpers the API tests share (imported by name: conftest modules are not imported)."""

from __future__ import annotations

import requests
from servers import ServerProcess


def post(server: ServerProcess, path: str, body=None, **kwargs) -> requests.Response:
    return requests.post(server.api_base + path, json=body, timeout=60, **kwargs)


def assert_openai_error(response: requests.Response, status: int | tuple[int, ...]) -> dict:
    """A 4xx/5xx in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return error
