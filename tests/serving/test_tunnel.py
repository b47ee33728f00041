"""--public-api with a fake cloudflared (it prints cloudflared's lines), and with none at all."""

from __future__ import annotations

import os
import re
import signal
import stat
from pathlib import Path

import pytest
import requests
from serving_support import (
    FAKE_TUNNEL_URL,
    alive,
    fake_runs,
    path_without_cloudflared,
    wait_until,
    write_fake_cloudflared,
)

from modules.serving.tunnel import Tunnel


@pytest.fixture
def fake(tmp_path) -> dict:
    """Environment for a server that finds the fake cloudflared first on PATH."""
    folder = write_fake_cloudflared(tmp_path / "bin")
    record = tmp_path / "cloudflared-runs.jsonl"
    return {
        "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_CLOUDFLARED_RECORD": str(record),
    }


def runs(env: dict) -> list[dict]:
    return fake_runs(Path(env["FAKE_CLOUDFLARED_RECORD"]))


def test_command_lines():
    quick = Tunnel("http://127.0.0.1:5000", tunnel_id=None, on_ready=print)
    assert quick.command("cloudflared") == [
        "cloudflared",
        "tunnel",
        "--no-autoupdate",
        "--url",
        "http://127.0.0.1:5000",
    ]
    named = Tunnel("https://[::1]:5000", tunnel_id="hearth", on_ready=print)
    assert named.command("cf") == [
        "cf",
        "tunnel",
        "--no-autoupdate",
        "--no-tls-verify",
        "run",
        "--url",
        "https://[::1]:5000",
        "hearth",
    ]


def made_key(log: str) -> str:
    match = re.search(r"API key +required: (hearth-[A-Za-z0-9_-]+) \(made for --public-api", log)
    assert match, log
    return match.group(1)


def test_without_a_key_the_public_api_gets_one_that_survives_restarts(serve, fake, user_data):
    server = serve("--public-api", env=fake)
    assert wait_until(lambda: f"Public API: {FAKE_TUNNEL_URL}/v1 (API key: " in server.log(), timeout=30)
    key = made_key(server.log())
    assert f"Public API: {FAKE_TUNNEL_URL}/v1 (API key: {key})" in server.log()  # with the URL
    assert "has no key" not in server.log()
    # Through the tunnel (its Host and headers): no key, no answer; the key opens it.
    tunnel = {"Host": FAKE_TUNNEL_URL.removeprefix("https://"), "CF-Connecting-IP": "203.0.113.9"}
    assert requests.get(server.api_url + "/models", headers=tunnel, timeout=10).status_code == 401
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    refused = requests.post(server.api_url + "/chat/completions", json=chat, headers=tunnel, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    keyed = {**tunnel, "Authorization": f"Bearer {key}"}
    assert requests.post(server.api_url + "/chat/completions", json=chat, headers=keyed, timeout=30).ok
    assert requests.get(server.api_base + "/metrics", headers=tunnel, timeout=10).status_code == 401
    path = user_data / "cache" / "public-api.key"
    assert path.read_text().strip() == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert server.stop() == 0
    again = serve("--public-api", env=fake)
    assert wait_until(lambda: "API key     required: hearth-" in again.log(), timeout=30), again.log()
    assert made_key(again.log()) == key  # the clients given the key keep working


def test_publishing_without_a_key_is_an_explicit_choice(serve, fake):
    server = serve("--public-api", "--public-api-without-key", env=fake)
    assert wait_until(lambda: f"Public API: {FAKE_TUNNEL_URL}/v1" in server.log(), timeout=30), server.log()
    assert "the API is public and has no key (--public-api-without-key)" in server.log()
    assert "made for --public-api" not in server.log()
    tunnel = {"Host": FAKE_TUNNEL_URL.removeprefix("https://"), "CF-Connecting-IP": "203.0.113.9"}
    assert requests.get(server.api_url + "/models", headers=tunnel, timeout=10).status_code == 200
    # Even so, nobody manages Hearth through the tunnel without an admin key.
    listing = requests.get(server.api_url + "/internal/model/list", headers=tunnel, timeout=10)
    assert listing.status_code == 403 and listing.json()["error"]["code"] == "local_only"


def test_quick_tunnel_url_is_printed_and_cloudflared_ends_with_the_server(serve, fake):
    server = serve("--public-api", env=fake)
    assert wait_until(lambda: f"Public API: {FAKE_TUNNEL_URL}/v1" in server.log(), timeout=30), server.log()
    [run] = runs(fake)
    assert run["argv"] == ["tunnel", "--no-autoupdate", "--url", f"http://127.0.0.1:{server.api_port}"]
    assert alive(run["pid"])
    # Requests arrive through the tunnel with its hostname: the API port answers them; the UI
    # port, which the tunnel does not reach, still refuses names it does not know.
    tunnel_host = {"Host": FAKE_TUNNEL_URL.removeprefix("https://")}
    assert requests.get(server.api_base + "/health", headers=tunnel_host, timeout=10).status_code == 200
    evil = {"Host": "evil.example"}
    assert requests.get(server.ui_url + "/health", headers=evil, timeout=10).status_code == 400
    assert server.stop(signal.SIGTERM) == 0
    assert wait_until(lambda: not alive(run["pid"]), timeout=5)


def test_cloudflared_dies_with_a_killed_server(serve, fake):
    server = serve("--public-api", env=fake)
    assert wait_until(lambda: len(runs(fake)) == 1 and FAKE_TUNNEL_URL in server.log(), timeout=30)
    pid = runs(fake)[0]["pid"]
    server.stop(signal.SIGKILL)
    assert wait_until(lambda: not alive(pid), timeout=5), "cloudflared outlived the server"


def test_a_failing_tunnel_is_retried(serve, fake):
    server = serve("--public-api", "--api-key", "k", env={**fake, "FAKE_CLOUDFLARED_FAILURES": "2"})
    assert wait_until(lambda: f"Public API: {FAKE_TUNNEL_URL}/v1" in server.log(), timeout=30), server.log()
    log = server.log()
    assert log.count("trying again") == 2
    assert "failed to request quick Tunnel" in log  # cloudflared's own reason is passed on
    assert "has no key" not in log
    assert len(runs(fake)) == 3
    assert server.stop() == 0
    assert not any(alive(run["pid"]) for run in runs(fake))


def test_a_tunnel_that_keeps_ending_is_restarted_then_given_up(serve, fake):
    server = serve("--public-api", "--api-key", "k", env={**fake, "FAKE_CLOUDFLARED_LIFETIME": "0.3"})
    assert wait_until(lambda: "Gave up after 3 attempts" in server.log(), timeout=30), server.log()
    log = server.log()
    assert log.count(f"Public API: {FAKE_TUNNEL_URL}/v1") == 3
    assert log.count("the tunnel ended; trying again") == 2
    assert len(runs(fake)) == 3
    assert requests.get(server.api_base + "/health", timeout=10).status_code == 200


def test_named_tunnel(serve, fake):
    server = serve("--public-api-id", "hearth-tunnel", "--api-key", "k", env=fake)
    assert wait_until(lambda: "the named tunnel hearth-tunnel is connected" in server.log(), timeout=30)
    [run] = runs(fake)
    assert run["argv"] == [
        "tunnel",
        "--no-autoupdate",
        "run",
        "--url",
        f"http://127.0.0.1:{server.api_port}",
        "hearth-tunnel",
    ]
    assert server.stop() == 0
    assert wait_until(lambda: not alive(run["pid"]), timeout=5)


def pycloudflared_has_a_binary() -> bool:
    from pycloudflared.util import get_info

    return Path(get_info().executable).exists()


@pytest.mark.skipif(pycloudflared_has_a_binary(), reason="pycloudflared already downloaded cloudflared")
def test_without_cloudflared_the_server_says_so_and_serves_locally(serve):
    # No cloudflared on PATH, and pycloudflared's download goes to a proxy that refuses it,
    # as it fails offline (deterministically, whatever this machine's network).
    env = {
        "PATH": path_without_cloudflared(),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    server = serve("--public-api", env=env)
    assert wait_until(lambda: "Gave up after 3 attempts" in server.log(), timeout=60), server.log()
    log = server.log()
    assert "no cloudflared on PATH, and downloading it failed" in log
    assert "the API is still served locally" in log
    assert requests.get(server.api_base + "/health", timeout=10).status_code == 200
    assert requests.get(server.ui_url + "/health", timeout=10).status_code == 200
    assert server.stop() == 0
