"""What a request may ask of MCP tools: remote URLs (public addresses only unless allowed),
allowed tools and approval rules, as OpenAI's `mcp` tool defines them."""

from __future__ import annotations

import pytest

from extensions.openai.mcp_wire import McpTool
from extensions.openai.responses_mcp import check_remote_url, public_tool
from modules.errors import InvalidRequest


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/mcp", "http://10.1.2.3/mcp", "http://[::1]/mcp", "http://169.254.169.254/"]
)
def test_private_and_loopback_addresses_are_refused_unless_allowed(url):
    with pytest.raises(InvalidRequest, match="private or local address"):
        check_remote_url(url, False, "tools.0.server_url")
    check_remote_url(url, True, "tools.0.server_url")


@pytest.mark.parametrize("url", ["ftp://example.org/mcp", "file:///etc/passwd", "http:///mcp", "mcp"])
def test_only_http_urls(url):
    with pytest.raises(InvalidRequest, match="http"):
        check_remote_url(url, True, "tools.0.server_url")


def test_a_public_address_is_allowed():
    check_remote_url("https://93.184.216.34/mcp", False, "tools.0.server_url")  # a literal: no DNS


def test_allowed_tools_and_approval_rules():
    tool = McpTool.model_validate({"type": "mcp", "server_label": "t"})
    assert tool.allows("x", False) and tool.wants_approval("x", False)  # OpenAI's default: ask
    tool = McpTool.model_validate(
        {
            "type": "mcp",
            "server_label": "t",
            "allowed_tools": {"tool_names": ["get", "put"]},
            "require_approval": {"never": {"tool_names": ["get"]}, "always": {"read_only": True}},
        }
    )
    assert tool.allows("get", False) and not tool.allows("delete", False)
    assert not tool.wants_approval("get", False) and tool.wants_approval("put", False)
    assert tool.wants_approval("list", True)
    assert McpTool.model_validate({"type": "mcp", "server_label": "t", "allowed_tools": ["a"]}).allows(
        "a", False
    )
    never = McpTool.model_validate({"type": "mcp", "server_label": "t", "require_approval": "never"})
    assert not never.wants_approval("anything", False)


def test_credentials_are_not_echoed():
    tool = McpTool.model_validate(
        {
            "type": "mcp",
            "server_label": "t",
            "server_url": "https://x/mcp",
            "authorization": "s3cret",
            "headers": {"A": "b"},
        }
    )
    assert public_tool(tool) == {"type": "mcp", "server_label": "t", "server_url": "https://x/mcp"}


@pytest.mark.parametrize("label", ["", "a b", "x" * 65, "semi;colon"])
def test_server_labels_are_checked(label):
    with pytest.raises(ValueError):
        McpTool.model_validate({"type": "mcp", "server_label": label})
