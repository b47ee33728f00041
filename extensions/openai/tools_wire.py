"""Hearth's own tool shapes: `GET /v1/internal/tools` and the `hearth_tools` field of chat
completions (docs/tools.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .bodies import Out, _omit


class HearthTools(BaseModel):
    """`hearth_tools` on /v1/chat/completions: tools Hearth runs itself during the request."""

    model_config = ConfigDict(strict=True, extra="ignore")  # protocol.ApiModel's (which imports this)

    servers: list[str] = Field(default_factory=list, description="Labels of MCP servers in mcp.json.")
    tools: list[str] = Field(default_factory=list, description="Built-in and local tools, by name.")
    max_steps: int = Field(8, ge=1, le=8, description="Most rounds of calls before the model must answer.")


class ToolOut(Out):
    name: str
    description: str
    parameters: dict
    source: Literal["builtin", "local", "mcp"]
    approval: Literal["always", "never", "once"]
    server: str | None = _omit()


class ServerOut(Out):
    label: str
    transport: str
    state: Literal["stopped", "running", "failed"]
    error: str | None = None
    tools: list[ToolOut] = Field(default_factory=list)


class ToolsStatus(Out):
    servers: list[ServerOut]
    local: list[ToolOut]
    builtin: list[ToolOut]
