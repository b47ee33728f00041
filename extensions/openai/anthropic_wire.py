"""Anthropic's Messages API wire format (`/v1/messages`), as typed models.

As everywhere in the API, fields Hearth has no use for are accepted and ignored (Claude
Code sends `context_management`, `output_config`, `metadata`, `cache_control` on blocks,
...), known fields are strict, and `max_tokens` is required, as Anthropic requires it.
Content blocks are told apart by `type`; an unknown one is a 400 naming the block.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from .bodies import Out, _omit
from .protocol import ApiModel, HearthChatFields, SamplingRequest, _field

MAX_TOKENS = 2**31 - 1


class TextBlock(ApiModel):
    type: Literal["text"]
    text: str


class Base64Source(ApiModel):
    type: Literal["base64"]
    media_type: str | None = None
    data: str


class UrlSource(ApiModel):
    type: Literal["url"]
    url: str


class ImageBlock(ApiModel):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class DocumentBlock(ApiModel):
    type: Literal["document"]
    source: dict[str, Any]


class ToolUseBlock(ApiModel):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


class ToolResultBlock(ApiModel):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[Annotated[TextBlock | ImageBlock | DocumentBlock, Field(discriminator="type")]] = ""
    is_error: bool | None = None


class ThinkingBlock(ApiModel):
    """The model's thinking in an earlier turn: never put back into a prompt (templates drop
    earlier reasoning too)."""

    type: Literal["thinking", "redacted_thinking"]


Block = Annotated[
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class MessageIn(ApiModel):
    # "system" is not Anthropic's, but Claude Code sends such messages inside `messages`.
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class CustomTool(ApiModel):
    type: Literal["custom"] | None = None
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]

    def as_chat_tool(self) -> dict:
        function: dict[str, Any] = {"name": self.name, "parameters": self.input_schema}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}


class ServerTool(BaseModel):
    """A tool Anthropic's servers run (web_search_20250305, bash_20250124, ...): not used."""

    model_config = ConfigDict(extra="allow")
    type: str


def _tool_kind(value: Any) -> str:
    custom = isinstance(value, dict) and value.get("type") in (None, "custom")
    return "custom-tool" if custom else "server-tool"


AnyTool = Annotated[
    Annotated[CustomTool, Tag("custom-tool")] | Annotated[ServerTool, Tag("server-tool")],
    Discriminator(_tool_kind),
]


class ToolChoice(ApiModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Thinking(ApiModel):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)


class Metadata(ApiModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    user_id: str | None = Field(None, max_length=1024)


class MessagesRequest(SamplingRequest, HearthChatFields):
    """Anthropic's fields, plus Hearth's sampling and chat fields as on chat completions."""

    model: str = _field(..., "Model id (see /v1/models).")
    max_tokens: int = _field(
        ..., "Most tokens to generate; more than the context holds means as many as fit.", ge=1, le=MAX_TOKENS
    )
    messages: list[MessageIn] = _field(..., "The conversation so far.", min_length=1)
    system: str | list[TextBlock] | None = _field(None, "The system prompt: a string or text blocks.")
    stop_sequences: list[str] | None = _field(None, "Strings that end the generation.", max_length=16)
    temperature: float | None = _field(None, "0 to 1.", ge=0, le=1)
    tools: list[AnyTool] | None = _field(None, "Tools the model may call (server tools are not used).")
    tool_choice: ToolChoice | None = _field(None, "auto, any, tool (with name) or none.")
    thinking: Thinking | None = _field(
        None,
        "enabled or disabled: reaches templates that read `enable_thinking`; adaptive: the model's own.",
    )
    metadata: Metadata | None = _field(
        None, "metadata.user_id: requests with the same one are served where the earlier ones were."
    )

    @field_validator("n")
    @classmethod
    def _one_message(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("a message has one answer; use n on /v1/chat/completions")
        return value

    def stop_strings(self) -> tuple[str, ...]:
        return (*(self.stop_sequences or ()), *super().stop_strings())

    def custom_tools(self) -> list[CustomTool]:
        return [tool for tool in self.tools or () if isinstance(tool, CustomTool)]

    def server_tools(self) -> list[str]:
        return [tool.type for tool in self.tools or () if isinstance(tool, ServerTool)]


class CountTokensRequest(MessagesRequest):
    max_tokens: int | None = _field(None, "Not needed to count.", ge=1, le=MAX_TOKENS)


# --- Answers ----------------------------------------------------------------------------------


class TextOut(Out):
    type: Literal["text"] = "text"
    text: str = ""


class ThinkingOut(Out):
    type: Literal["thinking"] = "thinking"
    thinking: str = ""
    signature: str = ""


class ToolUseOut(Out):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


BlockOut = Annotated[TextOut | ThinkingOut | ToolUseOut, Field(discriminator="type")]


class UsageOut(Out):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class MessageOut(Out):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[BlockOut] = Field(default_factory=list)
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"] | None = None
    stop_sequence: str | None = None
    usage: UsageOut
    ignored_tools: list[str] | None = _omit(
        description="Hearth: the types of the request's server tools, which Hearth does not run."
    )


class MessageStreamEvent(Out):
    """message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error."""

    model_config = ConfigDict(extra="allow")
    type: str


class TokenCount(Out):
    input_tokens: int


class AnthropicErrorBody(Out):
    type: str
    message: str


class AnthropicError(Out):
    type: Literal["error"] = "error"
    error: AnthropicErrorBody
