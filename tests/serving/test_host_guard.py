"""The Host guard against DNS rebinding: which Host headers are answered, and how refusals look."""

from __future__ import annotations

import pytest
import requests

from modules.serving.guards import HostGuard, split_host
from modules.serving.listeners import LISTENER
from modules.settings import load_settings


def guard(*argv: str) -> HostGuard:
    return HostGuard(load_settings(list(argv), {}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost:7860", ("localhost", "7860")),
        ("127.0.0.1:5000", ("127.0.0.1", "5000")),
        ("[::1]:5000", ("::1", "5000")),
        ("[::1]", ("::1", None)),
        ("example.com.:80", ("example.com", "80")),
        ("host.docker.internal", ("host.docker.internal", None)),
    ],
)
def test_split_host(value, expected):
    assert split_host(value) == expected


ANSWERED_BY_DEFAULT = [
    "localhost",
    "localhost:5000",
    "127.0.0.1",
    "127.0.0.1:7860",
    "[::1]:5000",
    "[::1]",
    "192.168.1.20:5000",
    "10.0.0.7",
    "[fe80::1]:80",
    "LOCALHOST:1",
]
REFUSED_BY_DEFAULT = [
    "evil.example",
    "evil.example:5000",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "host.docker.internal:5000",
    "mypc.local",
]


@pytest.mark.parametrize("host", ANSWERED_BY_DEFAULT)
def test_localhost_and_ip_addresses_are_answered(host):
    assert guard().allows(host)


@pytest.mark.parametrize("host", REFUSED_BY_DEFAULT)
def test_other_names_are_refused(host):
    assert guard().active_on("ui") and guard().active_on("api") and guard().active_on(None)
    assert not guard().allows(host)


def test_allowed_hosts_with_and_without_a_port():
    g = guard("--allowed-hosts", "host.docker.internal", "Box.LAN:8080")
    assert g.allows("host.docker.internal:5000") and g.allows("host.docker.internal")
    assert g.allows("box.lan:8080") and not g.allows("box.lan:8081") and not g.allows("box.lan")
    assert not g.allows("evil.example")


def test_star_turns_the_guard_off():
    g = guard("--allowed-hosts", "*")
    assert not g.active_on("ui") and not g.active_on("api") and not g.active_on(None)


def test_listen_turns_the_guard_off_unless_names_are_listed():
    assert not guard("--listen").active_on("ui")
    assert not guard("--listen-host", "192.168.1.20").active_on("api")
    listed = guard("--listen", "--allowed-hosts", "box.lan")
    assert listed.active_on("ui") and listed.active_on("api")


def test_public_api_turns_it_off_on_the_api_port_only():
    for flags in (["--public-api"], ["--public-api-id", "my-tunnel"]):
        g = guard(*flags)
        assert not g.active_on("api")
        assert g.active_on("ui")  # the tunnel does not reach the UI port


def test_the_quick_tunnels_hostname_is_added_once_known():
    g = guard("--public-api", "--allowed-hosts", "api.example.com")
    assert g.active_on("api") and not g.allows("quiet-river.trycloudflare.com")
    g.allow("quiet-river.trycloudflare.com")
    assert g.allows("quiet-river.trycloudflare.com") and g.allows("quiet-river.trycloudflare.com:443")


# --- In the app: the refusal, per port -----------------------------------------------------------


def test_api_port_refuses_in_openais_error_shape(build_app):
    client = build_app().test_client()
    response = client.get(
        "/v1/things", base_url="http://evil.example:5000", environ_overrides={LISTENER: "api"}
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "host_not_allowed"
    assert "evil.example" in error["message"] and "--allowed-hosts evil.example" in error["message"]


def test_ui_port_refuses_in_plain_text(build_app):
    client = build_app().test_client()
    response = client.get("/", base_url="http://evil.example:7860", environ_overrides={LISTENER: "ui"})
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert "--allowed-hosts evil.example" in response.get_data(as_text=True)


def test_refused_before_any_route_even_unknown_ones(build_app):
    client = build_app().test_client()
    for path in ("/health", "/no/such/page", "/v1/things"):
        assert client.get(path, base_url="http://evil.example").status_code == 400, path


def test_untagged_requests_are_guarded_too(build_app):
    """Under gunicorn nothing tags the port: the guard still applies, OpenAI-shaped under /v1."""
    client = build_app().test_client()
    response = client.get("/v1/things", base_url="http://evil.example")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "host_not_allowed"
    assert client.get("/v1/things", base_url="http://localhost:5000").status_code == 200


def test_allowed_hosts_in_the_app(build_app):
    client = build_app("--allowed-hosts", "host.docker.internal").test_client()
    ok = client.get(
        "/health", base_url="http://host.docker.internal:5000", environ_overrides={LISTENER: "api"}
    )
    assert ok.status_code == 200


def test_request_without_a_host_header_is_answered(build_app):
    """HTTP/1.0 clients may send none; a browser always does, so rebinding cannot hide there."""
    client = build_app().test_client()
    response = client.get("/health", environ_overrides={"HTTP_HOST": None, LISTENER: "ui"})
    assert response.status_code == 200


# --- A real server ------------------------------------------------------------------------------


def test_real_server_guards_both_ports(serve):
    server = serve("--api")
    for base in (server.ui_url, server.api_base):
        assert requests.get(base + "/health", headers={"Host": "evil.example"}, timeout=10).status_code == 400
        assert requests.get(base + "/health", headers={"Host": "localhost"}, timeout=10).status_code == 200
    refused = requests.get(server.api_base + "/health", headers={"Host": "evil.example"}, timeout=10)
    assert refused.json()["error"]["code"] == "host_not_allowed"


def test_real_server_with_allowed_hosts(serve):
    server = serve("--api", "--allowed-hosts", "host.docker.internal")
    docker = requests.get(
        server.api_base + "/health", headers={"Host": "host.docker.internal:5000"}, timeout=10
    )
    assert docker.status_code == 200
    other = requests.get(server.api_base + "/health", headers={"Host": "evil.example"}, timeout=10)
    assert other.status_code == 400
