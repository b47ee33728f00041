"""The UI port serves the UI, the API port the API; /health is on both; gunicorn serves all."""

from __future__ import annotations

import pytest
import requests
from serving_support import install_ws_extension

from modules.serving.guards import route_side
from modules.serving.listeners import LISTENER


@pytest.mark.parametrize(
    ("endpoint", "side"),
    [
        ("openai.chat_completions", "api"),
        ("openai.media.embeddings", "api"),
        ("core.metrics", "api"),
        ("core.health", None),
        ("static", None),
        (None, None),
        ("web.index", "ui"),
        ("ws_echo.echo", "ui"),
        ("openai_like.view", "ui"),
    ],
)
def test_route_side(endpoint, side):
    assert route_side(endpoint) == side


def get(client, path: str, listener: str | None):
    overrides = {LISTENER: listener} if listener else {}
    return client.get(path, base_url="http://127.0.0.1", environ_overrides=overrides)


def test_each_port_serves_its_own_routes(build_app):
    client = build_app().test_client()
    assert get(client, "/", "ui").get_data(as_text=True) == "the chat UI"
    assert get(client, "/v1/things", "api").status_code == 200
    assert get(client, "/v1/pictures", "api").status_code == 200  # a child of the API blueprint
    assert get(client, "/docs", "api").status_code == 200
    assert get(client, "/metrics", "api").status_code == 200
    for listener in ("ui", "api"):
        assert get(client, "/health", listener).status_code == 200


def test_api_routes_are_404_on_the_ui_port(build_app):
    client = build_app("--api-port", "5123").test_client()
    for path in ("/v1/things", "/v1/pictures", "/docs", "/metrics"):
        assert get(client, path, "ui").status_code == 404, path
    error = get(client, "/v1/things", "ui").get_json()["error"]  # API clients get JSON
    assert error["code"] == "wrong_port"
    assert error["message"] == "GET /v1/things is an API route: the API is on port 5123, not the UI's."


def test_ui_routes_are_openai_shaped_404s_on_the_api_port(build_app):
    client = build_app().test_client()
    response = get(client, "/", "api")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "wrong_port"
    assert (
        error["message"] == "Unknown route GET / on the API port (see /docs); the browser UI is on port 7860."
    )


def test_without_a_tag_one_port_serves_everything(build_app):
    client = build_app().test_client()
    for path in ("/", "/v1/things", "/docs", "/health", "/metrics"):
        assert get(client, path, None).status_code == 200, path


def test_real_server_separates_the_ports(serve, user_data):
    server = serve("--api", "--extensions", install_ws_extension(user_data))
    assert requests.get(server.ui_url + "/ui-page", timeout=10).text == "a UI page"
    wrong = requests.get(server.api_base + "/ui-page", timeout=10)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "wrong_port"
    assert requests.get(server.ui_url + "/metrics", timeout=10).status_code == 404
    assert "hearth_http_requests" in requests.get(server.api_base + "/metrics", timeout=10).text
    for base in (server.ui_url, server.api_base):
        assert requests.get(base + "/health", timeout=10).json()["status"] == "ok"


def test_real_server_serves_the_api_on_its_port_only(serve):
    server = serve("--api")
    assert requests.get(server.api_url + "/models", timeout=10).status_code == 200
    assert requests.get(server.api_base + "/docs", timeout=10).status_code == 200
    for path in ("/v1/models", "/docs", "/openapi.json"):
        assert requests.get(server.ui_url + path, timeout=10).status_code == 404, path
