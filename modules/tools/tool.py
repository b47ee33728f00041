"""What a tool is, whatever its source, and what running one gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Approval = Literal["always", "never", "once"]  # ask every time, never ask, ask once per chat
APPROVALS: tuple[str, ...] = get_args(Approval)

DEFAULT_TIMEOUT = 30.0  # seconds a call may take
MAX_OUTPUT_CHARS = 16_000  # what the model gets of a tool's output


class ToolFailed(Exception):
    """A tool could not give a result: a bad argument, a crash, a timeout, a dead server.
    The message is shown to the model ("the tool failed: ...")."""


@dataclass(frozen=True)
class Tool:
    name: str  # as the model calls it
    description: str
    parameters: dict  # JSON schema of the arguments (an object)
    source: str  # "builtin", "local" or "mcp"
    approval: Approval = "always"
    server: str | None = None  # an MCP tool's server label
    timeout: float = DEFAULT_TIMEOUT
    annotations: dict = field(default_factory=dict)

    def chat_tool(self) -> dict:
        """The OpenAI function definition the chat service renders into prompts."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "source": self.source,
            "approval": self.approval,
        }
        if self.server is not None:
            out["server"] = self.server
        return out


def truncated(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """A tool's output cut to `limit` characters, with a note saying so."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[the output was cut: {len(text) - limit} more characters]"
