"""HTTPS with --ssl-keyfile/--ssl-certfile: both ports, the openai client, websockets, bad files."""

from __future__ import annotations

import ssl
import subprocess
import sys

import pytest
import requests
import simple_websocket
from openai import DefaultHttpxClient, OpenAI
from servers import PROJECT_ROOT
from serving_support import install_ws_extension, wait_until, write_certificate


@pytest.fixture
def certificate(tmp_path):
    return write_certificate(tmp_path / "tls")


def test_openai_client_over_https(serve, certificate):
    cert, key = certificate
    server = serve("--api", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), verify=str(cert))
    assert server.api_url.startswith("https://")
    with DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(cert))) as http:
        client = OpenAI(base_url=server.api_url, api_key="unused", http_client=http, max_retries=0)
        models = [model.id for model in client.models.list()]
        assert "tiny" in models
        reply = client.chat.completions.create(
            model="tiny", max_tokens=8, temperature=0, messages=[{"role": "user", "content": "Hello"}]
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert reply.usage.completion_tokens >= 1
    assert f"https://127.0.0.1:{server.api_port}/v1" in server.log()


def test_ui_port_and_websockets_over_https(serve, certificate, user_data):
    cert, key = certificate
    server = serve(
        "--api",
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        "--extensions",
        install_ws_extension(user_data),
        verify=str(cert),
    )
    assert requests.get(server.ui_url + "/health", verify=str(cert), timeout=10).status_code == 200
    context = ssl.create_default_context(cafile=str(cert))
    ws = simple_websocket.Client.connect(f"wss://127.0.0.1:{server.ui_port}/ws/echo", ssl_context=context)
    try:
        ws.send("over TLS")
        assert ws.receive(timeout=10) == "over TLS"
    finally:
        ws.close()


def test_the_certificate_is_checked_by_clients(serve, certificate):
    cert, key = certificate
    server = serve("--api", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), verify=str(cert))
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.api_base + "/health", timeout=10)  # the system's CAs do not know it
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.api_port}/health", timeout=10)  # plain HTTP
    assert requests.get(server.api_base + "/health", verify=str(cert), timeout=10).status_code == 200


def test_environment_variables_set_the_files(serve, certificate):
    cert, key = certificate
    server = serve(
        "--api", env={"OPENEDAI_CERT_PATH": str(cert), "OPENEDAI_KEY_PATH": str(key)}, wait_for=None
    )
    server.scheme = "https"

    def healthy() -> bool:
        try:
            return requests.get(server.api_base + "/health", verify=str(cert), timeout=2).ok
        except requests.RequestException:
            return False

    assert wait_until(healthy, timeout=60), server.log()


def start(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "server.py", "--user-data-dir", str(tmp_path), "--api", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_file_is_one_line(tmp_path, certificate):
    _, key = certificate
    missing = tmp_path / "nowhere" / "cert.pem"
    result = start(tmp_path, "--ssl-keyfile", str(key), "--ssl-certfile", str(missing))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"hearth: error: --ssl-certfile: cannot read {missing} (No such file or directory)"
    )


def test_unreadable_key_is_one_line(tmp_path, certificate):
    cert, _ = certificate
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = start(tmp_path, "--ssl-keyfile", str(folder), "--ssl-certfile", str(cert))
    assert result.returncode == 2
    assert result.stderr.strip() == f"hearth: error: --ssl-keyfile: cannot read {folder} (Is a directory)"


def test_half_a_pair_and_a_mismatched_pair(tmp_path, certificate):
    cert, key = certificate
    result = start(tmp_path, "--ssl-certfile", str(cert))
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "hearth: error: --ssl-certfile needs --ssl-keyfile too",
    )
    other_cert, _ = write_certificate(tmp_path / "other")
    result = start(tmp_path, "--ssl-certfile", str(other_cert), "--ssl-keyfile", str(key))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("hearth: error: --ssl-certfile/--ssl-keyfile: ")
