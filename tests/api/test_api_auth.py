"""API keys, the admin key, CORS, and a bearer token that names a model (LocalAI), against a real
server (tests/api/test_api_access.py has the whole matrix of places, pages and keys)."""

from __future__ import annotations

import openai
import pytest
import requests
from api_helpers import assert_openai_error, post

HI = [{"role": "user", "content": "Hi"}]
KEY, ADMIN = "sk-test-key", "sk-admin-key"


@pytest.fixture(scope="module")
def locked(start_api):
    return start_api("--api-key", KEY, "--admin-key", ADMIN, "--cors-origins", "http://app.example")


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_the_client_needs_the_key(locked):
    wrong = openai.OpenAI(base_url=locked.api_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    right = openai.OpenAI(base_url=locked.api_url, api_key=KEY, max_retries=0)
    assert right.chat.completions.create(model="tiny", messages=HI, max_tokens=2).choices


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/internal/encode"),
        ("GET", "/v1/internal/model/info"),
        ("GET", "/v1/internal/model/list"),
        ("POST", "/v1/internal/stop-generation"),
        ("GET", "/v1/models/tiny"),
    ],
)
def test_every_endpoint_needs_a_key(locked, method, path):
    response = requests.request(method, locked.api_base + path, json={}, timeout=10)
    assert_openai_error(response, 401)
    response = requests.request(method, locked.api_base + path, json={}, timeout=10, headers=bearer("nope"))
    assert_openai_error(response, 401)


def test_x_api_key_header_works_too(locked):
    response = requests.get(locked.api_url + "/models", headers={"x-api-key": KEY}, timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/health", "/v1/internal/health", "/docs", "/openapi.json"])
def test_health_and_docs_need_no_key(locked, path):
    assert requests.get(locked.api_base + path, timeout=10).status_code == 200


def test_admin_calls_need_the_admin_key(locked):
    for path, body in [
        ("/v1/internal/model/unload", {"model_name": "Tiny Two Instruct"}),
        ("/v1/internal/model/load", {"model_name": "tiny"}),
    ]:
        assert_openai_error(post(locked, path, body, headers=bearer(KEY)), 401)
        assert post(locked, path, body, headers=bearer(ADMIN)).status_code == 200
    assert_openai_error(
        requests.get(locked.api_url + "/internal/model/list", headers=bearer(KEY), timeout=10), 401
    )
    names = requests.get(locked.api_url + "/internal/model/list", headers=bearer(ADMIN), timeout=10).json()
    assert "tiny" in names["model_names"]
    # the admin key opens the ordinary endpoints as well
    assert requests.get(locked.api_url + "/models", headers=bearer(ADMIN), timeout=10).status_code == 200


def test_stopping_everything_needs_the_admin_key(locked):
    assert_openai_error(post(locked, "/v1/internal/stop-generation", {}, headers=bearer(KEY)), 401)
    assert post(locked, "/v1/internal/stop-generation", {}, headers=bearer(ADMIN)).status_code == 200


def test_cors_preflight_needs_no_key_and_allows_the_configured_origin(locked):
    response = requests.options(
        locked.api_url + "/chat/completions",
        timeout=10,
        headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "x-stainless-os" in response.headers["Access-Control-Allow-Headers"]
    other = requests.options(
        locked.api_url + "/chat/completions",
        timeout=10,
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    # errors carry the header too, so a browser app can read them
    denied = requests.get(locked.api_url + "/models", headers={"Origin": "http://app.example"}, timeout=10)
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == "http://app.example"


def test_only_this_machines_pages_by_default(api):
    """Any site the user visits once could drive the API through the browser (`*` was the
    default); now only local pages can, and `--cors-origins '*'` is the explicit choice."""
    response = requests.get(api.api_url + "/models", headers={"Origin": "http://localhost:3000"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    foreign = requests.get(api.api_url + "/models", headers={"Origin": "https://evil.example"}, timeout=10)
    assert_openai_error(foreign, 403)
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_without_a_key_a_bearer_token_naming_a_model_selects_it(api):
    def model_used(token: str, body_model: str | None) -> str:
        body = {"messages": HI, "max_tokens": 1, **({"model": body_model} if body_model else {})}
        response = post(api, "/v1/chat/completions", body, headers=bearer(token))
        assert response.status_code == 200, response.text
        return response.json()["model"]

    assert model_used("Tiny Two Instruct", None) == "Tiny Two Instruct"
    assert model_used("Tiny Two Instruct", "gpt-3.5-turbo") == "Tiny Two Instruct"
    assert model_used("Tiny Two Instruct", "tiny") == "tiny"  # a model the body names wins
    assert model_used("sk-anything", "tiny") == "tiny"
    client = openai.OpenAI(base_url=api.api_url, api_key="Tiny Two Instruct", max_retries=0)
    assert (
        client.completions.create(model="text-davinci-003", prompt="Hi", max_tokens=1).model
        == "Tiny Two Instruct"
    )


def test_with_a_key_the_token_is_only_a_key(locked):
    response = post(locked, "/v1/chat/completions", {"messages": HI, "max_tokens": 1}, headers=bearer("tiny"))
    assert_openai_error(response, 401)
