"""Managing Hearth from the UI — models, settings, extensions' parameters, LocalDocs folders —
needs the login (--ui-auth) unless the request comes from this machine; chatting does not.
Driven through the app with the client address (REMOTE_ADDR) a real server would see."""

from __future__ import annotations

import pytest

ORIGIN = "http://localhost"
REMOTE = {"REMOTE_ADDR": "192.0.2.7"}

MANAGEMENT = [
    ("POST", "/ui/api/models/unload", {"name": "Tiny Two Instruct"}),
    ("POST", "/ui/api/models/load", {"name": "tiny"}),
    ("PUT", "/ui/api/settings", {"mode": "chat"}),
    ("PUT", "/ui/api/extensions/localdocs/params", {"top_k": 4}),
    ("POST", "/ui/api/localdocs", {"name": "loot", "folders": ["FOLDER"], "index": False}),
]


@pytest.fixture
def make_ui(open_app, make_settings, user_data, tmp_path):
    (user_data / "settings.yaml").write_text(f'localdocs-folder_roots: ["{tmp_path}"]\n')

    def make(*flags: str, environ: dict | None = None):
        client = open_app(make_settings("--extensions", "localdocs", *flags)).test_client()
        client.environ_base.update({"HTTP_ORIGIN": ORIGIN, "REMOTE_ADDR": "127.0.0.1", **(environ or {})})
        return client

    return make


def send(client, method, path, body, tmp_path, **headers):
    if isinstance(body, dict) and body.get("folders"):
        body = {**body, "folders": [str(tmp_path)]}
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT)
def test_management_from_this_machine_without_a_login(make_ui, tmp_path, method, path, body):
    response = send(make_ui(), method, path, body, tmp_path)
    assert response.status_code in (200, 201), response.get_json()


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT)
@pytest.mark.parametrize(
    ("environ", "headers"),
    [
        (REMOTE, {}),
        ({"REMOTE_ADDR": "fe80::1"}, {}),
        ({}, {"X-Forwarded-For": "203.0.113.9"}),  # nginx on this machine, passing a visitor on
        ({}, {"X-Forwarded-Proto": "https"}),
    ],
)
def test_management_from_elsewhere_needs_the_login(make_ui, tmp_path, method, path, body, environ, headers):
    response = send(make_ui("--listen", environ=environ), method, path, body, tmp_path, **headers)
    assert response.status_code == 403
    message = response.get_json()["error"]["message"]
    assert "only be changed from this machine" in message and "--ui-auth" in message


def test_chatting_from_elsewhere_is_not_management(make_ui):
    client = make_ui("--listen", environ=REMOTE)
    assert client.post("/ui/api/chats", json={"mode": "instruct"}).status_code == 201
    assert client.get("/ui/api/status").status_code == 200
    assert client.get("/ui/api/localdocs").status_code == 200  # reading the collections is not
    assert client.put("/ui/api/presets/Mine", json={"sampling": {"temperature": 0.5}}).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT)
def test_with_a_login_it_may_come_from_anywhere(make_ui, tmp_path, monkeypatch, method, path, body):
    monkeypatch.setattr("modules.web.pages.LOGIN_FAILURE_DELAY", 0)
    client = make_ui("--listen", "--ui-auth", "ann:secret", environ=REMOTE)
    assert send(client, method, path, body, tmp_path).status_code == 401  # not logged in yet
    client.post("/login", data={"username": "ann", "password": "secret", "next": "/"})
    assert send(client, method, path, body, tmp_path).status_code in (200, 201)


def test_the_marked_views_are_the_management_ones(make_ui):
    from modules.serving.access import ACCESS_ATTRIBUTE

    app = make_ui().application
    marked = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], ACCESS_ATTRIBUTE, None) == "admin"
        and rule.rule.startswith("/ui/")
    }
    assert marked == {
        "/ui/api/models/load",
        "/ui/api/models/unload",
        "/ui/api/settings",
        "/ui/api/extensions/<name>/params",
        "/ui/api/localdocs",
        "/ui/api/localdocs/<name>",
        "/ui/api/localdocs/<name>/index",
    }
