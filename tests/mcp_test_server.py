"""A small MCP server for the tests, written with the SDK's MCPServer (FastMCP before mcp 2):
`python mcp_test_server.py` serves stdio, `python mcp_test_server.py http PORT` streamable
HTTP on 127.0.0.1. Its tools echo, crash the process mid-call, and hang. Each takes an
argument with one possible value, so that a small model forced to call one writes a short
call (a tool without parameters lets a grammar accept any object)."""

from __future__ import annotations

import os
import sys
from typing import Literal

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("hearth-test")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return f"echo: {text}"


@server.tool()
def crash(now: Literal["yes"]) -> str:
    """End the server's process in the middle of the call."""
    os._exit(3)


@server.tool()
async def hang(now: Literal["yes"]) -> str:
    """Answer after an hour."""
    await anyio.sleep(3600)
    return "woke up"


@server.tool()
def report(topic: Literal["today"]) -> str:
    """A long report."""
    return "The secret word of the day is PAPAYA. " * 40


@server.tool()
def ping(host: Literal["here"]) -> str:
    """A short answer."""
    return "pong"


@server.tool()
def big(size: int) -> str:
    """A long output."""
    return "x" * size


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
