"""The UI's defences: login, same-origin checks, loopback-only hosts and safe headers."""

from __future__ import annotations

import logging
import stat

import pytest

from modules.settings import SettingsError, load_settings
from modules.web.security import CSP, SECRET_FILE

ORIGIN = "http://localhost"


@pytest.fixture
def make_app(open_app, make_settings):
    return lambda *argv: open_app(make_settings(*argv))


def client_for(application, origin: str | None = ORIGIN):
    client = application.test_client()
    if origin:
        client.environ_base["HTTP_ORIGIN"] = origin
    return client


# --- Headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/characters", "/models", "/settings", "/ui/api/status", "/ui/static/js/chat.js"]
)
def test_every_ui_response_has_a_strict_policy(ui, path):
    response = ui.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_have_no_inline_script(ui):
    import re

    for path in ("/", "/characters", "/models", "/settings"):
        html = ui.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, tag
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path  # no event handler attributes


def test_start_up_data_cannot_break_out_of_its_script_block(ui):
    ui.post("/ui/api/characters", data={"name": "</script><script>alert(1)</script>"})
    html = ui.get("/").get_data(as_text=True)
    assert "</script><script>alert(1)" not in html
    assert "\\u003c/script\\u003e" in html


# --- Cross-site requests ---------------------------------------------------------------------------


def test_cross_site_writes_are_refused(web_app):
    evil = client_for(web_app, "http://evil.example")
    response = evil.post("/ui/api/chats", json={"mode": "instruct"})
    assert response.status_code == 403 and "Cross-site" in response.get_json()["error"]["message"]
    assert client_for(web_app, "null").put("/ui/api/settings", json={"mode": "chat"}).status_code == 403
    sneaky = client_for(web_app, None)
    response = sneaky.delete("/ui/api/presets/x", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert web_app.extensions["hearth"].chat.history.list("instruct") == []


def test_same_origin_and_non_browser_writes_pass(web_app):
    assert client_for(web_app).post("/ui/api/chats", json={"mode": "instruct"}).status_code == 201
    assert client_for(web_app, None).post("/ui/api/chats", json={"mode": "instruct"}).status_code == 201


def test_reads_from_anywhere_still_get_the_data_only_through_the_same_origin_policy(web_app):
    # GETs are not refused (a link from elsewhere may open the UI); CORS is never granted.
    response = client_for(web_app, "http://evil.example").get("/ui/api/status")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


# --- Listening on the network ---------------------------------------------------------------


def test_listening_without_a_login_logs_a_warning(make_app, caplog):
    caplog.set_level(logging.WARNING)
    make_app("--listen")
    assert "reachable from the network without a login" in caplog.text


def test_with_listen_and_a_login_no_warning(make_app, caplog):
    caplog.set_level(logging.WARNING)
    make_app("--listen", "--ui-auth", "ann:secret")
    assert "without a login" not in caplog.text


# --- Login ---------------------------------------------------------------------------------------


def log_in(client, user="ann", password="secret", next_path="/"):
    return client.post("/login", data={"username": user, "password": password, "next": next_path})


def test_login_guards_pages_api_and_socket(make_app, monkeypatch):
    monkeypatch.setattr("modules.web.pages.LOGIN_FAILURE_DELAY", 0)
    application = make_app("--ui-auth", "ann:secret,bob:hunter2")
    client = client_for(application)
    page = client.get("/characters")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/characters")
    assert client.get("/ui/api/status").status_code == 401
    assert client.post("/ui/api/chats", json={"mode": "instruct"}).status_code == 401
    assert client.get("/ui/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"}).status_code == 401
    assert client.get("/ui/static/css/hearth.css").status_code == 200  # the login page needs it
    assert client.get("/login").status_code == 200

    wrong = log_in(client, password="nope")
    assert wrong.status_code == 401 and b"do not match" in wrong.data
    assert log_in(client, user="nobody").status_code == 401
    right = log_in(client, next_path="/models")
    assert right.status_code == 302 and right.headers["Location"] == "/models"
    assert client.get("/ui/api/status").status_code == 200
    assert client.get("/login").status_code == 302  # already logged in

    assert client.post("/logout").status_code == 302
    assert client.get("/ui/api/status").status_code == 401


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:alert(1)"]
)
def test_login_never_redirects_off_site(make_app, target):
    client = client_for(make_app("--ui-auth", "ann:secret"))
    response = log_in(client, next_path=target)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_cross_site_login_is_refused(make_app):
    client = client_for(make_app("--ui-auth", "ann:secret"), "http://evil.example")
    assert log_in(client).status_code == 403


def test_sessions_survive_a_restart_but_not_a_new_password(make_app, user_data):
    first = client_for(make_app("--ui-auth", "ann:secret"))
    log_in(first)
    key_file = user_data / "cache" / SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    cookie = first.get_cookie("hearth_ui_session")
    assert cookie is not None and cookie.http_only

    restarted = client_for(make_app("--ui-auth", "ann:secret"))
    restarted.set_cookie("hearth_ui_session", cookie.value)
    assert restarted.get("/ui/api/status").status_code == 200

    changed = client_for(make_app("--ui-auth", "ann:new-password"))
    changed.set_cookie("hearth_ui_session", cookie.value)
    assert changed.get("/ui/api/status").status_code == 401


def test_a_file_of_credentials(make_app, tmp_path, monkeypatch):
    monkeypatch.setattr("modules.web.pages.LOGIN_FAILURE_DELAY", 0)
    path = tmp_path / "logins.txt"
    path.write_text("# users\nann:secret\n\ncarl:pa:ss:word\n")
    client = client_for(make_app("--ui-auth", str(path)))
    assert log_in(client, "carl", "pa:ss:word").status_code == 302


@pytest.mark.parametrize("value", ["justapassword", ":nouser", "user:", "/no/such/file"])
def test_bad_ui_auth_fails_start_up_in_one_line_without_the_secret(value, tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings(["--user-data-dir", str(tmp_path), "--ui-auth", value], {})
    message = str(caught.value)
    assert "ui_auth" in message and "\n" not in message
    assert "justapassword" not in message and "nouser" not in message
