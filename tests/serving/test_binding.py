"""Where the server listens: loopback by default, the IPv6/IPv4 flags, busy ports, --nowebui."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import requests
from servers import PROJECT_ROOT, free_port
from serving_support import listening_addresses, wait_until

from modules.serving.listeners import StartupError, plan
from modules.settings import load_settings


def addresses(*argv: str, env: dict | None = None) -> list[tuple[str, str, int]]:
    settings = load_settings(list(argv), env or {})
    return [(listener.side, listener.host, listener.port) for listener in plan(settings)]


def test_loopback_only_by_default():
    assert addresses() == [("ui", "127.0.0.1", 7860)]
    assert addresses("--api") == [("ui", "127.0.0.1", 7860), ("api", "127.0.0.1", 5000)]


def test_listen_binds_every_interface():
    assert addresses("--listen", "--api") == [("ui", "0.0.0.0", 7860), ("api", "0.0.0.0", 5000)]


def test_listen_host_is_the_only_address():
    assert addresses("--listen-host", "192.168.1.20", "--api", "--api-enable-ipv6") == [
        ("ui", "192.168.1.20", 7860),
        ("api", "192.168.1.20", 5000),
    ]


def test_ipv6_flags_and_their_environment_variables():
    assert addresses("--nowebui", "--api-enable-ipv6") == [("api", "127.0.0.1", 5000), ("api", "::1", 5000)]
    assert addresses("--nowebui", "--api-enable-ipv6", "--listen") == [
        ("api", "0.0.0.0", 5000),
        ("api", "::", 5000),
    ]
    assert addresses("--nowebui", "--api-enable-ipv6", "--api-disable-ipv4") == [("api", "::1", 5000)]
    env = {"OPENEDAI_ENABLE_IPV6": "1", "OPENEDAI_DISABLE_IPV4": "1", "OPENEDAI_PORT": "5123"}
    assert addresses("--api", env=env) == [("ui", "127.0.0.1", 7860), ("api", "::1", 5123)]


def test_ui_ignores_the_api_ip_flags():
    assert addresses("--api", "--api-enable-ipv6", "--api-disable-ipv4")[0] == ("ui", "127.0.0.1", 7860)


def test_flags_that_imply_the_api():
    for flags in (["--nowebui"], ["--public-api"], ["--public-api-id", "t"], ["--extensions", "openai"]):
        assert ("api", "127.0.0.1", 5000) in addresses(*flags), flags
    assert addresses("--nowebui") == [("api", "127.0.0.1", 5000)]


def test_no_address_left_is_a_one_line_error():
    with pytest.raises(
        StartupError, match="--api-disable-ipv4 leaves the API no address; add --api-enable-ipv6"
    ):
        addresses("--api", "--api-disable-ipv4")


def test_same_port_for_both_is_a_one_line_error():
    with pytest.raises(StartupError, match=r"both are 6000.*--listen-port or --api-port"):
        addresses("--api", "--listen-port", "6000", "--api-port", "6000")


# --- Real servers -------------------------------------------------------------------------------


def test_ui_and_api_answer_and_only_loopback_is_bound(serve):
    server = serve("--api")
    assert requests.get(server.ui_url + "/health", timeout=10).status_code == 200
    assert requests.get(server.api_base + "/health", timeout=10).status_code == 200
    assert listening_addresses(server.ui_port) == {"127.0.0.1"}
    assert listening_addresses(server.api_port) == {"127.0.0.1"}


def test_nowebui_serves_the_api_alone(serve):
    server = serve("--nowebui")
    assert requests.get(server.api_base + "/metrics", timeout=10).status_code == 200  # an API route
    assert listening_addresses(server.ui_port) == set()


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_works(), reason="this machine cannot bind the IPv6 loopback ::1")
def test_ipv6_flag_adds_the_ipv6_loopback(serve):
    server = serve("--api", "--api-enable-ipv6")
    assert listening_addresses(server.api_port) == {"127.0.0.1", "::1"}
    assert listening_addresses(server.ui_port) == {"127.0.0.1"}
    answer = requests.get(f"http://[::1]:{server.api_port}/health", timeout=10)
    assert answer.status_code == 200 and answer.json()["models"] == ["tiny"]
    assert f"http://[::1]:{server.api_port}/v1" in server.log()


@pytest.mark.skipif(not ipv6_loopback_works(), reason="this machine cannot bind the IPv6 loopback ::1")
def test_ipv6_only_from_the_environment(serve):
    server = serve("--api", wait_for="ui", env={"OPENEDAI_ENABLE_IPV6": "1", "OPENEDAI_DISABLE_IPV4": "1"})
    assert wait_until(lambda: listening_addresses(server.api_port) == {"::1"}, timeout=10)
    assert requests.get(f"http://[::1]:{server.api_port}/health", timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.api_port}/health", timeout=10)


def run_server(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "server.py", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(("side", "flag"), [("UI", "--listen-port"), ("API", "--api-port")])
def test_busy_port_is_one_clear_line(tmp_path, side, flag):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = {"--listen-port": str(free_port()), "--api-port": str(free_port()), flag: str(busy)}
        result = run_server(
            "--user-data-dir", str(tmp_path), "--api", *[x for kv in ports.items() for x in kv]
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"hearth: error: port {busy} ({side} on 127.0.0.1) is already in use; choose another with {flag}"
    )
    assert "Traceback" not in result.stdout + result.stderr
