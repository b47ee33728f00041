"""`user_data/mcp.json`: MCP servers in Claude Desktop's format, plus Hearth's own keys.

    {"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {}},
        "web": {"url": "http://localhost:8000/mcp", "headers": {"Authorization": "Bearer ..."},
                "approval": {"fetch": "never"}, "timeout": 60}}}

`approval` is "always" (the default), "never" or "once", or a dict by tool name (with "*"
for the others); `timeout` is the seconds a call may take.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .tool import DEFAULT_TIMEOUT, Approval

log = logging.getLogger(__name__)


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    approval: Approval | dict[str, Approval] = "always"
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0, le=3600)
    disabled: bool = False

    @model_validator(mode="after")
    def _one_transport(self) -> ServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("a server has either a command (stdio) or a url (streamable HTTP)")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def approval_of(self, tool: str) -> Approval:
        if isinstance(self.approval, str):
            return self.approval
        return self.approval.get(tool, self.approval.get("*", "always"))


class McpFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mcpServers: dict[str, Any] = Field(default_factory=dict)


def load_mcp_config(path: Path) -> tuple[dict[str, ServerConfig], dict[str, str]]:
    """The servers of `path` by label, and the errors of the entries that were left out (a
    bad file or entry is logged and skipped, never fatal)."""
    if not path.is_file():
        return {}, {}
    try:
        servers = McpFile.model_validate(json.loads(path.read_text(encoding="utf-8"))).mcpServers
    except (OSError, ValueError) as e:
        log.error("%s is not read: %s", path, e)
        return {}, {"*": f"{path.name}: {e}"}
    configs, errors = {}, {}
    for label, entry in servers.items():
        try:
            config = ServerConfig.model_validate(entry)
        except ValidationError as e:
            message = "; ".join(f"{'.'.join(map(str, x['loc'])) or label}: {x['msg']}" for x in e.errors())
            log.error("%s: the server %r is left out: %s", path, label, message)
            errors[label] = message
            continue
        if not config.disabled:
            configs[label] = config
    return configs, errors
