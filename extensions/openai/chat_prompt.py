"""The seam between the API and the chat engine: messages in, a prompt and a reply parser out.

The chat engine (`modules/chat/service.py`, being built alongside) is the one way Hearth
turns a conversation into a prompt. Until it lands on main, this module stands in for it
with the same contract (`ChatMessage`, `ChatOptions`, `PreparedPrompt`, the reply events)
and does the one thing the API needs first: instruct mode with the model's own chat
template, rendered in a sandbox. Swapping in the chat service changes this module only:
`prepare` and `reply_parser` then call `services().chat`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from modules.engines.base import ModelInfo
from modules.errors import InvalidRequest

# Used when a model has no chat template of its own (llama.cpp's server does the same).
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHATML_STOPS = ("<|im_end|>", "<|im_start|>")


# --- The chat engine's contract -------------------------------------------------------------------

@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    name: str | None = None
    tool_calls: tuple[dict, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ChatOptions:
    mode: str = "instruct"
    character: str | None = None
    instruction_template: str | None = None
    instruction_template_str: str | None = None
    user_name: str | None = None
    bot_name: str | None = None
    context: str | None = None
    greeting: str | None = None
    user_bio: str | None = None
    chat_instruct_command: str | None = None
    continue_: bool = False
    impersonate: bool = False
    tools: tuple[dict, ...] = ()
    tool_choice: str | dict = "auto"


@dataclass(frozen=True)
class PreparedPrompt:
    prompt: str
    stop: tuple[str, ...]
    grammar: str | None
    template_name: str
    truncated: bool = False
    dropped_messages: int = 0
    bot_name: str = "Assistant"
    user_name: str = "You"


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


ReplyEvent = ContentDelta | ReasoningDelta | ToolCallDelta


class PlainReplyParser:
    """Until the chat engine parses replies (reasoning, tool calls), the reply is all content."""

    def feed(self, text: str) -> list[ReplyEvent]:
        return [ContentDelta(text)] if text else []

    def finish(self) -> list[ReplyEvent]:
        return []


# --- The two entry points -------------------------------------------------------------------------

def prepare(messages: Sequence[ChatMessage], options: ChatOptions, model: ModelInfo, *,
            count_tokens: Callable[[str], int], max_tokens: int) -> PreparedPrompt:
    """The prompt for a conversation (the chat service's `prepare`)."""
    if options.mode != "instruct":
        raise InvalidRequest(
            f"mode {options.mode!r} needs Hearth's chat engine, which this build does not have "
            "yet; use mode 'instruct'.", param="mode")
    if options.instruction_template and not options.instruction_template_str:
        raise InvalidRequest(
            f"Instruction templates by name ({options.instruction_template!r}) need Hearth's chat "
            "engine, which this build does not have yet; send instruction_template_str instead.",
            param="instruction_template")
    source, name = options.instruction_template_str, "custom"
    if source is None:
        source, name = model.chat_template, "model"
    stops: tuple[str, ...] = ()
    if not source:
        source, name, stops = CHATML, "ChatML", CHATML_STOPS
    turns = [_template_message(m) for m in messages]
    continuing = options.continue_ and bool(messages) and messages[-1].role == "assistant"
    prompt = _render(source, turns, model, options.tools, add_generation_prompt=not continuing)
    if continuing:
        prompt = _cut_after(prompt, messages[-1].content)
    return PreparedPrompt(prompt=prompt, stop=stops, grammar=None, template_name=name)


def reply_parser(options: ChatOptions, prepared: PreparedPrompt) -> PlainReplyParser:
    """A fresh parser for the reply to `prepared` (the chat service's `reply_parser`)."""
    return PlainReplyParser()


# --- Rendering ------------------------------------------------------------------------------------

def _template_message(message: ChatMessage) -> dict:
    out: dict = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [dict(call) for call in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


@lru_cache(maxsize=16)
def _compile(source: str):
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False,
                                                                  indent=indent)
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise InvalidRequest(f"The chat template does not compile: {exc}",
                             param="instruction_template_str") from None


def _render(source: str, messages: list[dict], model: ModelInfo, tools: tuple[dict, ...], *,
            add_generation_prompt: bool) -> str:
    from jinja2 import TemplateError

    template = _compile(source)
    try:
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=model.bos_token, eos_token=model.eos_token,
                               tools=list(tools) or None)
    except TemplateError as exc:
        raise InvalidRequest(f"The chat template refused these messages: {exc}",
                             param="messages") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidRequest(f"The chat template failed on these messages: {exc}",
                             param="messages") from None


def _cut_after(prompt: str, partial: str) -> str:
    """The prompt up to the end of the partial assistant reply (its end-of-turn removed)."""
    at = prompt.rfind(partial) if partial else -1
    return prompt[: at + len(partial)] if at >= 0 else prompt
