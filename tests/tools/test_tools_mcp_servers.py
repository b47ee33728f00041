"""MCP servers through the official SDK: mcp-server-time (PyPI) over stdio, the test server
over stdio and streamable HTTP; crashes, hangs, restarts and shutdown."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mcp_helpers import echo_server, time_server

from modules.tools.mcp_config import ServerConfig, load_mcp_config
from modules.tools.mcp_servers import McpServers
from modules.tools.registry import ToolRegistry
from modules.tools.tool import ToolFailed


def children() -> set[int]:
    """This process's child processes (the stdio servers)."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                found.add(int(entry.name))
    return found


@pytest.fixture
def servers():
    hub = McpServers(
        {
            "time": ServerConfig.model_validate(time_server()),
            "test": ServerConfig.model_validate({**echo_server(), "timeout": 2}),
        }
    )
    yield hub
    hub.close()


def test_mcp_server_time_over_stdio(servers):
    before = children()
    assert [s.state for s in servers.status()] == ["stopped", "stopped"]
    tools = {tool.name: tool for tool in servers.list_tools("time")}
    assert {"get_current_time", "convert_time"} <= set(tools)
    tool = tools["get_current_time"]
    assert tool.source == "mcp" and tool.server == "time" and tool.approval == "always"
    assert "timezone" in tool.parameters["properties"]
    answer = json.loads(servers.call("time", "get_current_time", {"timezone": "Europe/Paris"}))
    assert answer["timezone"] == "Europe/Paris" and answer["datetime"][:2] == "20"
    assert {s.label: s.state for s in servers.status()} == {"time": "running", "test": "stopped"}
    assert children() - before, "the stdio server runs as a child process"
    servers.close()
    assert not children() - before, "close() stops the servers"


def test_a_crash_mid_call_is_an_error_and_the_server_comes_back(servers):
    assert servers.call("test", "echo", {"text": "hi"}) == "echo: hi"
    with pytest.raises(ToolFailed, match="test"):
        servers.call("test", "crash", {"now": "yes"})
    status = {s.label: s for s in servers.status()}["test"]
    assert status.state == "failed" and status.error
    assert servers.call("test", "echo", {"text": "again"}) == "echo: again"  # started again
    assert {s.label: s.state for s in servers.status()}["test"] == "running"


def test_a_hanging_tool_times_out_and_the_server_goes_on(servers):
    with pytest.raises(ToolFailed, match="within 2 seconds"):
        servers.call("test", "hang", {"now": "yes"})
    assert servers.call("test", "echo", {"text": "still here"}) == "echo: still here"


def test_a_tool_error_is_a_tool_failure(servers):
    with pytest.raises(ToolFailed):
        servers.call("test", "echo", {"wrong": 1})


def test_streamable_http(http_mcp_url):
    hub = McpServers({"web": ServerConfig(url=http_mcp_url)})
    try:
        assert {tool.name for tool in hub.list_tools("web")} >= {"echo", "hang"}
        assert hub.call("web", "echo", {"text": "over http"}) == "echo: over http"
        assert hub.status()[0].transport == "http"
    finally:
        hub.close()


def test_a_server_that_cannot_start_is_failed_not_fatal(tmp_path):
    hub = McpServers({"nope": ServerConfig(command=str(tmp_path / "missing"))})
    try:
        with pytest.raises(ToolFailed, match="did not start"):
            hub.list_tools("nope")
        assert hub.status()[0].state == "failed"
    finally:
        hub.close()


def test_mcp_json_in_claude_desktops_format(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"A": "1"}},
                    "web": {
                        "url": "http://localhost:1/mcp",
                        "headers": {"X": "y"},
                        "approval": {"get": "never"},
                    },
                    "both": {"command": "x", "url": "http://x"},
                    "bad": {"command": "x", "approval": "sometimes"},
                    "off": {"command": "x", "disabled": True},
                }
            }
        )
    )
    configs, errors = load_mcp_config(path)
    assert set(configs) == {"time", "web"} and set(errors) == {"both", "bad"}
    assert configs["web"].approval_of("get") == "never" and configs["web"].approval_of("put") == "always"
    assert configs["time"].transport == "stdio" and configs["web"].transport == "http"
    path.write_text("{not json")
    configs, errors = load_mcp_config(path)
    assert configs == {} and "mcp.json" in errors["*"]
    assert load_mcp_config(tmp_path / "absent.json") == ({}, {})


def test_the_registry_lists_every_source(tmp_path):
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"test": echo_server()}}))
    registry = ToolRegistry(tmp_path / "tools", tmp_path / "mcp.json", max_output=100)
    try:
        status = registry.status()
        assert [s["label"] for s in status["servers"]] == ["test"]
        assert {t["name"] for t in status["builtin"]} == {"current_time", "calculator"}
        big = next(tool for tool in registry.server_tools("test") if tool.name == "big")
        outcome = registry.run(big, {"size": 500})
        assert outcome.output.startswith("x" * 100) and "400 more characters" in outcome.output
        assert registry.status()["servers"][0]["state"] == "running"
        assert len(registry.status()["servers"][0]["tools"]) == 6
    finally:
        registry.close()


def test_the_native_stdio_transport_of_the_gevent_server(monkeypatch):
    """Under gevent (the server), stdio servers start through Hearth's own transport."""
    from modules.tools import mcp_servers

    monkeypatch.setattr(mcp_servers, "subprocess_is_patched", lambda: True)
    before = children()
    hub = McpServers(
        {
            "test": ServerConfig.model_validate({**echo_server(), "timeout": 2}),
            "time": ServerConfig.model_validate(time_server()),
        }
    )
    try:
        assert hub.call("test", "echo", {"text": "native"}) == "echo: native"
        assert "datetime" in hub.call("time", "get_current_time", {"timezone": "UTC"})
        with pytest.raises(ToolFailed, match="test"):
            hub.call("test", "crash", {"now": "yes"})
        with pytest.raises(ToolFailed, match="within 2 seconds"):
            hub.call("test", "hang", {"now": "yes"})
        assert hub.call("test", "echo", {"text": "again"}) == "echo: again"
    finally:
        hub.close()
    assert not children() - before
