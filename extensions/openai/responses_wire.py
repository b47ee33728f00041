"""The Responses API's wire format (`/v1/responses`), as typed models.

Requests follow the conventions of protocol.py: fields Hearth has no use for are accepted
and ignored (Codex CLI sends `include`, `prompt_cache_key`, `client_metadata`, ...), known
fields are strict. Input items are told apart by `type` (a bare `{"role", "content"}` is a
message); an unknown item type is a 400 naming the item. Tools of types other than
`function` and `mcp` (`web_search`, `namespace`, ...) are accepted and left out of the prompt;
`mcp` tools are run by Hearth (responses_mcp.py, shapes in mcp_wire.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from modules.engines.base import ImageInput
from modules.errors import InvalidRequest
from modules.image_input import MARKER, ImageReader, escape_markers, unreadable

from .bodies import Out, _omit
from .mcp_wire import (
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    McpCallItem,
    McpChoice,
    McpListToolsItem,
    McpTool,
    OutputMcpApprovalRequest,
    OutputMcpCall,
    OutputMcpListTools,
)
from .protocol import ApiModel, HearthChatFields, SamplingRequest, _field

MAX_METADATA_KEYS = 16
MAX_OUTPUT_TOKENS = 2**31 - 1


# --- Input items --------------------------------------------------------------------------------


class TextPart(ApiModel):
    type: Literal["input_text", "output_text", "text", "summary_text", "reasoning_text"]
    text: str


class RefusalPart(ApiModel):
    type: Literal["refusal"]
    refusal: str


class ImagePart(ApiModel):
    type: Literal["input_image"]
    image_url: str | None = None  # a data: URL, base64, or an http(s) URL
    file_id: str | None = None  # OpenAI's Files API: not served
    detail: str | None = None


class OtherPart(ApiModel):
    """Files and audio: not read by Hearth's models."""

    type: Literal["input_file", "input_audio"]


ContentPart = Annotated[TextPart | RefusalPart | ImagePart | OtherPart, Field(discriminator="type")]


class MessageItem(ApiModel):
    type: Literal["message"] = "message"
    id: str | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    status: str | None = None

    def content_of(self, where: str, images: ImageReader) -> tuple[str, tuple[ImageInput, ...]]:
        return parts_content(self.content, where, images)


class FunctionCallItem(ApiModel):
    type: Literal["function_call"]
    id: str | None = None
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    status: str | None = None


class FunctionCallOutputItem(ApiModel):
    type: Literal["function_call_output"]
    id: str | None = None
    call_id: str = Field(min_length=1)
    output: str | list[ContentPart]
    status: str | None = None

    def content_of(self, where: str, images: ImageReader) -> tuple[str, tuple[ImageInput, ...]]:
        return parts_content(self.output, where, images)


def parts_content(content: str | list, where: str, images: ImageReader) -> tuple[str, tuple[ImageInput, ...]]:
    """Text and images of an item's content, a marker in the text where each image goes."""
    if isinstance(content, str):
        return escape_markers(content), ()
    texts, found = [], []
    for i, part in enumerate(content):
        here = f"{where}.content.{i}"
        if isinstance(part, ImagePart):
            if part.image_url is None:
                raise InvalidRequest("Hearth serves no Files API: send the image as image_url.", param=here)
            found.append(images.read(part.image_url, here))
            texts.append(MARKER)
        elif isinstance(part, OtherPart):
            raise unreadable(here, part.type)
        else:
            texts.append(escape_markers(part.text if isinstance(part, TextPart) else part.refusal))
    return "".join(texts), tuple(found)


class ReasoningItem(ApiModel):
    """The model's reasoning from an earlier turn: kept in the history, never in a prompt
    (templates drop earlier reasoning too)."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[TextPart] = Field(default_factory=list)
    content: list[TextPart] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class ItemReference(ApiModel):
    """An item of a stored response, by id (resolved from the previous responses' items)."""

    type: Literal["item_reference"]
    id: str = Field(min_length=1)


def _item_type(value: Any) -> str | None:
    """OpenAI's "easy" input message has no `type`: `{"role": "user", "content": "Hi"}`."""
    if isinstance(value, dict):
        return value.get("type", "message")
    return getattr(value, "type", None)


# Tags with a "-" are left out of error paths (http._field_path): `input.0.role`.
InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")]
    | Annotated[McpListToolsItem, Tag("mcp_list_tools")]
    | Annotated[McpCallItem, Tag("mcp_call")]
    | Annotated[McpApprovalRequestItem, Tag("mcp_approval_request")]
    | Annotated[McpApprovalResponseItem, Tag("mcp_approval_response")],
    Discriminator(_item_type),
]


# --- Tools, formats and the request -------------------------------------------------------------


class FunctionTool(ApiModel):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def as_chat_tool(self) -> dict:
        function = {"name": self.name, "parameters": self.parameters or {"type": "object", "properties": {}}}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}


class OtherTool(BaseModel):
    """A hosted or client tool Hearth does not run (web_search, namespace, ...)."""

    model_config = ConfigDict(extra="allow")
    type: str


def _tool_kind(value: Any) -> str:
    """Which model validates a tool; a `type` of a wrong type (a list) goes to OtherTool,
    whose `type: str` then refuses it with a 400."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return "other-tool"
    return {"function": "function-tool", "mcp": "mcp-tool"}.get(kind, "other-tool")


AnyTool = Annotated[
    Annotated[FunctionTool, Tag("function-tool")]
    | Annotated[McpTool, Tag("mcp-tool")]
    | Annotated[OtherTool, Tag("other-tool")],
    Discriminator(_tool_kind),
]


class NamedFunctionChoice(ApiModel):
    type: Literal["function"]
    name: str


class AllowedToolsChoice(ApiModel):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class TextFormat(ApiModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    def schema_for_grammar(self) -> dict | None:
        if self.type == "text":
            return None
        if self.type == "json_schema":
            if self.schema_ is None:
                raise InvalidRequest("text.format json_schema needs a schema.", param="text.format.schema")
            return self.schema_
        return {"type": "object"}


class TextOptions(ApiModel):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningOptions(ApiModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesRequest(SamplingRequest, HearthChatFields):
    model: str | None = _field(None, "Model id (see /v1/models); none: the loaded model.")
    input: str | list[InputItem] = _field(..., "A user message, or a list of input items.")
    instructions: str | None = _field(
        None, "A system (developer) message for this response only; not carried to the next one."
    )
    previous_response_id: str | None = _field(None, "Continue the conversation of this stored response.")
    tools: list[AnyTool] | None = _field(
        None,
        "Function tools the model may call and MCP servers Hearth runs (docs/tools.md); tools of "
        "other types are accepted and not used.",
    )
    tool_choice: (
        Literal["none", "auto", "required"] | NamedFunctionChoice | McpChoice | AllowedToolsChoice | None
    ) = _field(None, "none, auto, required, a named function, an MCP server's tool, or allowed_tools.")
    parallel_tool_calls: bool | None = _field(None, "Accepted; the model may write several calls.")
    text: TextOptions | None = _field(None, "text.format: text, json_object or json_schema.")
    reasoning: ReasoningOptions | None = _field(
        None, "reasoning.effort reaches templates that read it; summaries are the model's own reasoning."
    )
    max_output_tokens: int | None = _field(
        None,
        "Most tokens to generate; more than the context holds means as many as fit.",
        ge=1,
        le=MAX_OUTPUT_TOKENS,
    )
    max_tool_calls: int | None = _field(
        None, "Most rounds of MCP tool calls Hearth runs in this response (at most 8).", ge=1
    )
    top_logprobs: int | None = _field(None, "Logprobs of the N most likely tokens (0 to 20).", ge=0, le=20)
    truncation: Literal["auto", "disabled"] | None = _field(
        None, "disabled (default): an input too long for the context is a 400; auto: drop the oldest items."
    )
    store: bool | None = _field(None, "Keep the response for GET and previous_response_id (default true).")
    prompt_cache_key: str | None = _field(
        None,
        "Requests with the same key are served where the earlier ones were, so that their prompt "
        "cache is reused (with upstream servers: the same upstream).",
        max_length=1024,
    )
    background: bool | None = _field(None, "Answer at once with a queued response; poll GET for the result.")
    metadata: dict[str, str] | None = _field(None, "Up to 16 string pairs, stored with the response.")
    conversation: Any = _field(None, "Not supported: use previous_response_id.")
    prompt: Any = _field(None, "Not supported: stored prompts are an OpenAI service.")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        return value

    @field_validator("n")
    @classmethod
    def _one_output(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("a response has one output; use n on /v1/chat/completions")
        return value

    def input_items(self) -> list[Any]:
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)

    def function_tools(self) -> list[FunctionTool]:
        return [tool for tool in self.tools or () if isinstance(tool, FunctionTool)]

    def mcp_tools(self) -> list[McpTool]:
        return [tool for tool in self.tools or () if isinstance(tool, McpTool)]

    def other_tools(self) -> list[str]:
        return [tool.type for tool in self.tools or () if isinstance(tool, OtherTool)]


class InputTokensRequest(ResponsesRequest):
    """POST /v1/responses/input_tokens: the same body, counted instead of answered."""

    input: str | list[InputItem] | None = _field(None, "A user message, or a list of input items.")


class InputItemsQuery(ApiModel):
    model_config = ConfigDict(strict=False, extra="ignore")

    after: str | None = None
    before: str | None = None
    limit: int = Field(20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"


# --- The response object ------------------------------------------------------------------------


class OutputText(Out):
    type: Literal["output_text"] = "output_text"
    text: str = ""
    annotations: list = Field(default_factory=list)
    logprobs: list = Field(default_factory=list)


class OutputMessage(Out):
    type: Literal["message"] = "message"
    id: str
    status: Literal["in_progress", "completed", "incomplete"] = "in_progress"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText] = Field(default_factory=list)


class ReasoningText(Out):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str = ""


class OutputReasoning(Out):
    type: Literal["reasoning"] = "reasoning"
    id: str
    status: Literal["in_progress", "completed", "incomplete"] = "in_progress"
    summary: list = Field(default_factory=list)
    content: list[ReasoningText] = Field(default_factory=list)
    encrypted_content: str | None = None


class OutputFunctionCall(Out):
    type: Literal["function_call"] = "function_call"
    id: str
    status: Literal["in_progress", "completed", "incomplete"] = "in_progress"
    call_id: str
    name: str
    arguments: str = ""


OutputItem = Annotated[
    OutputMessage
    | OutputReasoning
    | OutputFunctionCall
    | OutputMcpListTools
    | OutputMcpCall
    | OutputMcpApprovalRequest,
    Field(discriminator="type"),
]


class InputTokensDetails(Out):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(Out):
    reasoning_tokens: int = 0


class ResponseUsage(Out):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseErrorOut(Out):
    code: str
    message: str


class IncompleteDetails(Out):
    reason: Literal["max_output_tokens", "content_filter"]


class ReasoningOut(Out):
    effort: str | None = None
    summary: str | None = None


class ResponseObject(Out):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]
    completed_at: int | None = None
    background: bool = False
    error: ResponseErrorOut | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: ReasoningOut = ReasoningOut()
    store: bool = True
    temperature: float = 1.0
    text: dict = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: Any = "auto"
    tools: list[dict] = Field(default_factory=list)
    top_p: float = 1.0
    truncation: Literal["auto", "disabled"] = "disabled"
    usage: ResponseUsage | None = _omit()
    user: str | None = _omit()
    metadata: dict[str, str] = Field(default_factory=dict)
    ignored_tools: list[str] | None = _omit(
        description="Hearth: the types of the request's tools that are not functions and were left out."
    )

    @property
    def output_text(self) -> str:
        return "".join(
            part.text for item in self.output if isinstance(item, OutputMessage) for part in item.content
        )


class ResponseStreamEvent(Out):
    """Every event carries its `type` and `sequence_number`; the rest depends on the type."""

    model_config = ConfigDict(extra="allow")
    type: str
    sequence_number: int


class DeletedResponse(Out):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: Literal[True] = True


class InputItemList(Out):
    object: Literal["list"] = "list"
    data: list[dict]
    first_id: str | None
    last_id: str | None
    has_more: bool


class InputTokensCount(Out):
    object: Literal["response.input_tokens"] = "response.input_tokens"
    input_tokens: int
