"""The tools the chat UI offers: `GET /ui/api/tools` lists the MCP servers of mcp.json (with
their state and, once started, their tools), the user's Python tools and the built-in ones;
`POST /ui/api/tools/servers/<label>/start` starts a server (or finds it running) and lists
its tools, or says why it cannot start."""

from __future__ import annotations

from flask import Blueprint, jsonify

from modules.app import services
from modules.errors import NotFound
from modules.tools.tool import ToolFailed


def register_tool_routes(api: Blueprint) -> None:
    @api.get("/tools")
    def tools():
        return jsonify(services().tools.status())

    @api.post("/tools/servers/<label>/start")
    def start_server(label: str):
        registry = services().tools
        if registry.servers.config(label) is None:
            raise NotFound(f"No MCP server is labelled {label!r} in user_data/mcp.json.")
        try:
            registry.server_tools(label)
        except ToolFailed:
            pass  # its state says why
        status = next(s for s in registry.servers.status() if s.label == label)
        return jsonify(status.to_dict())
