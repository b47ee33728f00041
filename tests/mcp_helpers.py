"""Real MCP servers for the tests, offline: mcp-server-time (PyPI) and the test server
(mcp_test_server.py) over stdio, and the test server over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEST_SERVER = Path(__file__).with_name("mcp_test_server.py")


def time_server(**hearth_keys) -> dict:
    """mcp-server-time over stdio, as an mcp.json entry."""
    return {
        "command": sys.executable,
        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
        **hearth_keys,
    }


def echo_server(**hearth_keys) -> dict:
    """The test server over stdio (echo, crash, hang, big, report, ping)."""
    return {"command": sys.executable, "args": [str(TEST_SERVER)], **hearth_keys}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(log_path: Path) -> Iterator[str]:
    """The test server over streamable HTTP; yields its URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(TEST_SERVER), "http", str(port)], stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the HTTP MCP server did not start: {log_path}") from None
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            process.wait(10)
