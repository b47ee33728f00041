"""Fixtures for the tool tests: the test MCP server over streamable HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp_helpers import http_server


@pytest.fixture(scope="session")
def http_mcp_url(tmp_path_factory) -> Iterator[str]:
    with http_server(tmp_path_factory.mktemp("mcp-http") / "server.log") as url:
        yield url
