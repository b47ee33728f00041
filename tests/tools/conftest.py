"""Fixtures for the tool tests: real MCP servers (mcp-server-time over stdio, the test
server over stdio and streamable HTTP), never anything beyond loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TEST_SERVER = Path(__file__).with_name("mcp_test_server.py")


def time_server() -> dict:
    """mcp-server-time (PyPI) over stdio, as mcp.json names it."""
    return {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}


def echo_server() -> dict:
    """The test server over stdio."""
    return {"command": sys.executable, "args": [str(TEST_SERVER)]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def http_mcp_url(tmp_path_factory) -> Iterator[str]:
    """The test server over streamable HTTP on 127.0.0.1."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("mcp-http") / "server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, str(TEST_SERVER), "http", str(port)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("the HTTP MCP server did not start") from None
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(10)
    log.close()
