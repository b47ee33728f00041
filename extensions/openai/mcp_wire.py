"""The Responses API's MCP shapes: the `mcp` tool of a request, the `mcp` tool_choice, and
the `mcp_list_tools`, `mcp_call`, `mcp_approval_request` and `mcp_approval_response` items
(as input, when a client sends them back, and as output)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .bodies import Out, _omit
from .protocol import ApiModel

# --- The request ----------------------------------------------------------------------------------


class McpToolFilter(ApiModel):
    tool_names: list[str] | None = None
    read_only: bool | None = None  # Hearth: a tool is read-only when its server says so


class McpApprovalFilter(ApiModel):
    always: McpToolFilter | None = None
    never: McpToolFilter | None = None


class McpTool(ApiModel):
    """`{"type": "mcp", "server_label", ...}`: a server of mcp.json by label, or (when the
    server allows it) a remote server by URL."""

    type: Literal["mcp"]
    server_label: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    server_url: str | None = None
    connector_id: str | None = None
    server_description: str | None = None
    headers: dict[str, str] | None = None
    authorization: str | None = None
    allowed_tools: list[str] | McpToolFilter | None = None
    require_approval: Literal["always", "never"] | McpApprovalFilter | None = None

    def allows(self, name: str, read_only: bool) -> bool:
        allowed = self.allowed_tools
        if allowed is None:
            return True
        if isinstance(allowed, list):
            return name in allowed
        if allowed.tool_names is not None and name not in allowed.tool_names:
            return False
        return not allowed.read_only or read_only

    def wants_approval(self, name: str, read_only: bool) -> bool:
        """What the request asks (the default, as OpenAI's, is to ask)."""
        rule = self.require_approval
        if rule is None or rule == "always":
            return True
        if rule == "never":
            return False
        for names, answer in ((rule.never, False), (rule.always, True)):
            if names is not None and (
                (names.tool_names is not None and name in names.tool_names) or (names.read_only and read_only)
            ):
                return answer
        return True


class McpChoice(ApiModel):
    """tool_choice `{"type": "mcp", "server_label", "name"}`: call this server's tool."""

    type: Literal["mcp"]
    server_label: str
    name: str | None = None


# --- Items a client sends back ------------------------------------------------------------------------


class McpListToolsItem(ApiModel):
    type: Literal["mcp_list_tools"]
    id: str | None = None
    server_label: str
    tools: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None


class McpCallItem(ApiModel):
    type: Literal["mcp_call"]
    id: str | None = None
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: Any = None
    status: str | None = None
    approval_request_id: str | None = None

    def result_text(self) -> str:
        if self.error is None:
            return self.output or ""
        error = self.error
        if isinstance(error, dict):
            error = error.get("message") or error.get("content") or error
        return f"The tool failed: {error}"


class McpApprovalRequestItem(ApiModel):
    type: Literal["mcp_approval_request"]
    id: str = Field(min_length=1)
    server_label: str
    name: str
    arguments: str


class McpApprovalResponseItem(ApiModel):
    type: Literal["mcp_approval_response"]
    id: str | None = None
    approval_request_id: str = Field(min_length=1)
    approve: bool
    reason: str | None = None


# --- Output items ---------------------------------------------------------------------------------------


class McpListedTool(Out):
    name: str
    description: str | None = None
    input_schema: dict
    annotations: dict | None = None


class OutputMcpListTools(Out):
    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    id: str
    server_label: str
    tools: list[McpListedTool] = Field(default_factory=list)
    error: str | None = _omit()


class OutputMcpCall(Out):
    type: Literal["mcp_call"] = "mcp_call"
    id: str
    status: Literal["in_progress", "completed", "incomplete", "calling", "failed"] = "completed"
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: dict | None = None  # {"type": "mcp_tool_execution_error", "content": "..."}
    approval_request_id: str | None = None


class OutputMcpApprovalRequest(Out):
    type: Literal["mcp_approval_request"] = "mcp_approval_request"
    id: str
    server_label: str
    name: str
    arguments: str
