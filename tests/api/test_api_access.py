"""Who may call what (modules/serving/access.py, extensions/openai/cors.py), through the app:
admin calls from this machine and from elsewhere, with and without keys; web pages of this
machine and of other sites (CORS), on inference, admin and public routes; /metrics.

The guard decides by the client's address, so the tests set REMOTE_ADDR (and the headers a
proxy or the tunnel adds) as a real server's WSGI environ would carry them."""

from __future__ import annotations

import re

import pytest

from extensions.openai.api import ENDPOINTS, route_access
from extensions.openai.cors import origin_admitted

KEY, ADMIN = "sk-user", "sk-admin"
REMOTE = {"REMOTE_ADDR": "192.0.2.7"}
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
EVIL, LOCAL_PAGE = "https://evil.example", "http://localhost:3000"

# (method, path, body) of calls in each class of the endpoint table
INFERENCE = ("POST", "/v1/internal/encode", {"text": "hi"})
ADMIN_CALLS = [
    ("GET", "/v1/internal/model/list", None),
    ("POST", "/v1/internal/model/unload", {"model_name": "Tiny Two Instruct"}),
    ("POST", "/v1/internal/stop-generation", {}),  # without an id: every generation
    ("GET", "/v1/internal/localdocs", None),
    ("GET", "/v1/internal/tools", None),  # which tool servers run, with their errors
]


@pytest.fixture
def make_client(open_app, make_settings, user_data, tmp_path):
    (user_data / "settings.yaml").write_text(f'localdocs-folder_roots: ["{tmp_path}"]\n')

    def make(*flags: str, environ: dict | None = None):
        app = open_app(make_settings("--api", "--extensions", "localdocs", *flags))
        client = app.test_client()
        client.environ_base.update(environ or LOCAL)
        return client

    return make


def call(client, method, path, body=None, *, key=None, origin=None, **headers):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if origin:
        headers["Origin"] = origin
    return client.open(path, method=method, json=body, headers=headers)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --- The table is the one source of truth ------------------------------------------------------


def test_admin_routes_are_the_tables_and_localdocs_marks(make_client):
    app = make_client().application
    admin = {e.path for e in ENDPOINTS if e.access == "admin"}
    assert admin == {
        "/v1/internal/model/list",
        "/v1/internal/model/load",
        "/v1/internal/model/unload",
        "/v1/internal/lora/list",  # text-generation-webui's are admin calls too
        "/v1/internal/lora/load",
        "/v1/internal/lora/unload",
        "/v1/internal/tools",
    }
    access = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("openai."):
            path = re.sub(r"<(?:\w+:)?\w+>", "x", rule.rule)
            with app.test_request_context(path, method=sorted(rule.methods - {"HEAD", "OPTIONS"})[0]):
                access[rule.rule] = route_access()
    localdocs = {path for path in access if path.startswith("/v1/internal/localdocs")}
    assert len(localdocs) == 4  # seven routes on four rules, all marked admin_only
    assert {path for path, level in access.items() if level == "admin"} == admin | localdocs
    assert access["/v1/chat/completions"] == "key" and access["/openapi.json"] == "public"


# --- Admin calls: from where, with which key -------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_without_an_admin_key_admin_calls_come_only_from_this_machine(make_client, method, path, body):
    assert call(make_client(), method, path, body).status_code == 200
    assert call(make_client(environ={"REMOTE_ADDR": "::1"}), method, path, body).status_code == 200
    for environ, headers in [
        (REMOTE, {}),
        ({"REMOTE_ADDR": "10.0.0.5"}, {}),
        (LOCAL, {"X-Forwarded-For": "203.0.113.9"}),  # a reverse proxy on this machine
        (LOCAL, {"Forwarded": "for=203.0.113.9"}),
        (LOCAL, {"X-Real-IP": "203.0.113.9"}),
        (LOCAL, {"CF-Connecting-IP": "203.0.113.9"}),  # cloudflared
        (LOCAL, {"Via": "1.1 proxy"}),
    ]:
        error = error_of(call(make_client(environ=environ), method, path, body, **headers), 403)
        assert error["code"] == "local_only"
        assert "--admin-key" in error["message"]


def test_the_tunnel_makes_every_api_request_remote(make_client):
    client = make_client(
        "--public-api", "--public-api-without-key", environ={**LOCAL, "hearth.listener": "api"}
    )
    assert error_of(call(client, *ADMIN_CALLS[0]), 403)["code"] == "local_only"
    assert "--public-api" in call(client, *ADMIN_CALLS[0]).get_json()["error"]["message"]
    assert call(client, *INFERENCE).status_code == 200  # the API itself is public, as asked


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_with_an_admin_key_it_is_needed_from_anywhere(make_client, method, path, body):
    for environ in (LOCAL, REMOTE):
        client = make_client("--api-key", KEY, "--admin-key", ADMIN, environ=environ)
        assert error_of(call(client, method, path, body, key=KEY), 401)["code"] == "invalid_api_key"
        assert call(client, method, path, body, key=ADMIN).status_code == 200
    only_api_key = make_client("--api-key", KEY, environ=REMOTE)  # the admin key defaults to it
    assert call(only_api_key, method, path, body, key=KEY).status_code == 200


def test_localdocs_cannot_read_the_servers_files_from_elsewhere(make_client, tmp_path):
    """The issue's measurement: a collection of a server folder, created by a stranger."""
    body = {"name": "loot", "folders": [str(tmp_path)], "index": False}
    assert error_of(call(make_client(environ=REMOTE), "POST", "/v1/internal/localdocs", body), 403)
    assert error_of(call(make_client(), "POST", "/v1/internal/localdocs", body, origin=EVIL), 403)
    search = {"collections": ["loot"], "query": "password"}
    assert error_of(call(make_client(environ=REMOTE), "POST", "/v1/internal/localdocs/search", search), 403)
    assert call(make_client(), "POST", "/v1/internal/localdocs", body).status_code == 201


# --- Web pages (CORS) --------------------------------------------------------------------------------


def preflight(client, path, origin):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_inference_answers_this_machines_pages_by_default(make_client):
    client = make_client()
    for origin in (LOCAL_PAGE, "https://127.0.0.1", "http://[::1]:8080"):
        response = call(client, *INFERENCE, origin=origin)
        assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == origin
        allowed = preflight(client, INFERENCE[1], origin)
        assert allowed.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    plain = call(client, *INFERENCE)  # a program: no Origin, no CORS headers, answered
    assert plain.status_code == 200 and "Access-Control-Allow-Origin" not in plain.headers


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost.evil.example", "http://127.0.0.1.nip.io"])
def test_inference_refuses_other_sites(make_client, origin):
    client = make_client()
    refused = call(client, *INFERENCE, origin=origin)
    assert error_of(refused, 403)["code"] == "origin_not_allowed"
    assert "--cors-origins" in refused.get_json()["error"]["message"]
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Origin" not in preflight(client, INFERENCE[1], origin).headers
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "history_id": "planted"}
    assert error_of(call(client, "POST", "/v1/chat/completions", chat, origin=origin), 403)
    history = client.application.extensions["hearth"].chat.history
    assert not history.exists("instruct", None, "planted")  # nothing ran


def test_a_key_does_not_open_the_api_to_other_sites(make_client):
    client = make_client("--api-key", KEY)
    assert error_of(call(client, *INFERENCE, key=KEY, origin=EVIL), 403)["code"] == "origin_not_allowed"
    denied = call(client, *INFERENCE, origin=LOCAL_PAGE)  # a local page without the key: 401,
    assert error_of(denied, 401) and denied.headers["Access-Control-Allow-Origin"] == LOCAL_PAGE  # readable
    assert call(client, *INFERENCE, key=KEY, origin=LOCAL_PAGE).status_code == 200


def test_any_site_is_one_explicit_choice_away(make_client):
    client = make_client("--cors-origins", "*")
    response = call(client, *INFERENCE, origin=EVIL)
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    listed = make_client("--cors-origins", "https://app.example", "http://dev.example:*")
    assert call(listed, *INFERENCE, origin="https://app.example").status_code == 200
    assert call(listed, *INFERENCE, origin="http://dev.example:5173").status_code == 200
    assert call(listed, *INFERENCE, origin=LOCAL_PAGE).status_code == 403  # `local` was not listed


@pytest.mark.parametrize(("method", "path", "body"), [c for c in ADMIN_CALLS if "stop" not in c[1]])
@pytest.mark.parametrize("flags", [(), ("--cors-origins", "*")])
def test_admin_calls_never_answer_another_page(make_client, method, path, body, flags):
    client = make_client(*flags)
    for origin in (EVIL, LOCAL_PAGE):  # a local page of another port is another site too
        error = error_of(call(client, method, path, body, origin=origin), 403)
        assert error["code"] == "cross_site"
        assert "Access-Control-Allow-Origin" not in preflight(client, path, origin).headers
    same_site = call(client, method, path, body, origin="http://localhost")  # this server's own page
    assert same_site.status_code == 200 and "Access-Control-Allow-Origin" not in same_site.headers


def test_stopping_every_generation_is_not_for_pages_even_admitted_ones(make_client):
    """stop-generation is an inference route (a page may stop its own request by id); without
    an id it manages Hearth, so no page may."""
    client = make_client("--cors-origins", "*")
    assert error_of(call(client, "POST", "/v1/internal/stop-generation", {}, origin=EVIL), 403)["code"] == (
        "cross_site"
    )
    by_id = call(client, "POST", "/v1/internal/stop-generation", {"id": "chatcmpl-x"}, origin=EVIL)
    assert error_of(by_id, 404) and by_id.headers["Access-Control-Allow-Origin"] == "*"


def test_the_admin_key_opens_admin_calls_but_still_no_cors(make_client):
    client = make_client("--admin-key", ADMIN)
    assert error_of(call(client, *ADMIN_CALLS[0], origin=EVIL), 403)["code"] == "cross_site"
    keyed = call(client, *ADMIN_CALLS[0], key=ADMIN, origin=EVIL)
    assert keyed.status_code == 200 and "Access-Control-Allow-Origin" not in keyed.headers


def test_public_routes_answer_everyone_with_cors_only_for_admitted_pages(make_client):
    client = make_client()
    for path in ("/health", "/v1/internal/health", "/openapi.json"):
        foreign = client.get(path, headers={"Origin": EVIL})
        assert foreign.status_code == 200 and "Access-Control-Allow-Origin" not in foreign.headers
        local = client.get(path, headers={"Origin": LOCAL_PAGE})
        assert local.headers["Access-Control-Allow-Origin"] == LOCAL_PAGE


def test_origin_matching():
    assert origin_admitted("HTTP://LocalHost:3000", ["local"])
    assert not origin_admitted("http://localhost@evil.example", ["local"])
    assert not origin_admitted("file://", ["local"])
    assert origin_admitted("chrome-extension://abc", ["chrome-extension://abc"])
    assert not origin_admitted("https://app.example", ["http://app.example:*"])


# --- /metrics ---------------------------------------------------------------------------------------


def test_metrics_need_the_api_key_when_there_is_one(make_client):
    assert make_client().get("/metrics").status_code == 200  # no key: open like the API
    client = make_client("--api-key", KEY, "--admin-key", ADMIN)
    assert error_of(client.get("/metrics"), 401)["code"] == "invalid_api_key"
    assert error_of(client.get("/metrics", headers={"Authorization": "Bearer nope"}), 401)
    for key in (KEY, ADMIN):
        response = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200 and b"hearth_http_requests_total" in response.data
    public = make_client("--api-key", KEY, "--metrics-public", environ=REMOTE)
    assert public.get("/metrics").status_code == 200
