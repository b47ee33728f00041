"""The plain types the chat engine speaks: messages in, options, and the prepared prompt out.

The API and the UI convert their requests into these once; nothing below sees Flask or
OpenAI request objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modules.engines.base import ImageInput

MODES = ("chat", "chat-instruct", "instruct")

DEFAULT_CHAT_INSTRUCT_COMMAND = (
    'Continue the chat dialogue below. Write a single reply for the character "<|character|>".\n\n<|prompt|>'
)


@dataclass(frozen=True)
class Attachment:
    """A file in a user message, read into text (modules/chat/documents.py). The prompt gets
    the text (cut to fit the context where needed); the UI shows the name. An image (kind
    "image") has no text: its `file` is saved with the chat (chat_images.py) and the prompt
    gets its pixels, for models that read images."""

    name: str
    kind: str  # "text" | "markdown" | "code" | "pdf" | "docx" | "html" | "image"
    text: str
    file: str = ""  # an image's file among the chat's files

    def to_dict(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "text": self.text}
        if self.file:
            out["file"] = self.file
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Attachment:
        return cls(
            str(data.get("name") or "file"),
            str(data.get("kind") or "text"),
            str(data.get("text") or ""),
            str(data.get("file") or ""),
        )


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    name: str | None = None
    # OpenAI shape: {"id", "type": "function", "function": {"name", "arguments" (a JSON string)}}
    tool_calls: tuple[dict, ...] = ()
    tool_call_id: str | None = None
    # A saved reply's data from extensions (the hooks' `state["extras"]`, e.g. LocalDocs'
    # sources): kept in the chat file, shown by the UI, never part of a prompt.
    extras: dict[str, Any] = field(default_factory=dict)
    # Images of the message, in order; the content holds a marker (image_input.MARKER) where
    # each one goes. Only for models with a projector.
    images: tuple[ImageInput, ...] = ()
    # Files the user attached (their text goes into the prompt, after the hooks).
    attachments: tuple[Attachment, ...] = ()
    # A reply written with tools in the chat UI: its rounds of calls and results, in order
    # before its text (tool_rounds.py has the shape; a prompt sees them as the model's turns).
    tool_rounds: tuple[dict, ...] = ()
    # What a saved chat knows about its messages (never part of a prompt, and not part of a
    # message's equality): its id in the chat (versions and edits name it), when it was
    # written (seconds since the epoch) and which model wrote a reply.
    id: int | None = field(default=None, compare=False)
    time: float | None = field(default=None, compare=False)
    model: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        """The OpenAI message shape (only the fields that are set), plus `extras` if any."""
        out: dict = {"role": self.role, "content": self.content}
        if self.name:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [dict(call) for call in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.extras:
            out["extras"] = dict(self.extras)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ChatMessage:
        content = data.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        return cls(
            role=str(data.get("role", "user")),
            content=content or "",
            name=data.get("name") or None,
            tool_calls=tuple(data.get("tool_calls") or ()),
            tool_call_id=data.get("tool_call_id") or None,
            extras=dict(data["extras"]) if isinstance(data.get("extras"), dict) else {},
        )


@dataclass(frozen=True)
class ChatOptions:
    """The chat knobs of one request (the API fields of the same names)."""

    mode: str = "instruct"  # "chat" | "chat-instruct" | "instruct"
    character: str | None = None  # None: the service's default character
    instruction_template: str | None = None
    instruction_template_str: str | None = None
    user_name: str | None = None  # text-generation-webui's name1
    bot_name: str | None = None  # name2 (overrides the character's name)
    context: str | None = None  # overrides the character's context
    greeting: str | None = None
    user_bio: str | None = None
    chat_instruct_command: str | None = None
    continue_: bool = False  # the last assistant message is partial: continue it
    impersonate: bool = False  # write the user's next message instead
    tools: tuple[dict, ...] = ()  # OpenAI tool definitions
    tool_choice: str | dict = "auto"
    # For reasoning models, given to templates that read them: `reasoning_effort` (gpt-oss:
    # "low" | "medium" | "high") and `enable_thinking` (Qwen3 and others). None: not set.
    reasoning_effort: str | None = None
    enable_thinking: bool | None = None


@dataclass(frozen=True)
class PreparedPrompt:
    prompt: str
    stop: tuple[str, ...]  # extra stop strings the mode needs (e.g. "\nYou:")
    grammar: str | None  # GBNF when tool_choice forces a call, else None
    template_name: str  # e.g. "ChatML", "model" (the GGUF's own), "custom"; "" in chat mode
    truncated: bool
    dropped_messages: int
    bot_name: str
    user_name: str
    # What the reply parser needs to know about this prompt.
    mode: str = "instruct"
    tools_enabled: bool = False  # parse tool calls out of the reply
    tool_names: tuple[str, ...] = ()
    starts_in_reasoning: bool = False  # the prompt itself opened a <think> block
    # The hooks' state for this request (output_modifier gets the same dict; its "extras"
    # hold what extensions add to the response), and the new user message as the UI saves
    # it (chat_input_modifier's visible_text; None when the request had no new message).
    state: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    visible_text: str | None = None
    images: tuple[ImageInput, ...] = ()  # the prompt's images, one per marker, in order
    # What the user should know about this prompt: files cut or left out to fit the context.
    notices: tuple[str, ...] = ()
