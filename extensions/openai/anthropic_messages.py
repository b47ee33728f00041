"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API.

This module only translates: Anthropic's messages (text, tool_use, tool_result blocks)
become the chat messages of a `ChatTurn`, and the turn's pieces become content blocks and
Anthropic's stream events. Errors on these routes have Anthropic's shape (`error_body`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator

from flask import Response

from modules.chat.messages import ChatMessage
from modules.engines.base import FINISH_LENGTH
from modules.errors import HearthError, InvalidRequest
from modules.image_input import MARKER, ImageReader, escape_markers, unreadable

from . import chat_turns
from .anthropic_wire import (
    AnthropicError,
    AnthropicErrorBody,
    Base64Source,
    CountTokensRequest,
    ImageBlock,
    MessageIn,
    MessageOut,
    MessagesRequest,
    TextBlock,
    TextOut,
    ThinkingBlock,
    ThinkingOut,
    TokenCount,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseOut,
    UsageOut,
)
from .bodies import UsageOut as UsageTotals
from .chat_turns import ChatTurn, StartedTurn
from .http import json_response, read_json
from .sse import Dialect, sse_response
from .streaming import Collected, Piece

log = logging.getLogger(__name__)

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(error: HearthError) -> dict:
    kind = ERROR_TYPES.get(error.status, "invalid_request_error" if error.status < 500 else "api_error")
    return AnthropicError(error=AnthropicErrorBody(type=kind, message=error.message)).model_dump()


ANTHROPIC = Dialect(done=False, named=True, error=error_body)


# --- POST /v1/messages ------------------------------------------------------------------------------


def create_message() -> Response:
    body = read_json(MessagesRequest)
    started = chat_turns.start(chat_turn(body))
    ignored = body.server_tools()
    if ignored:
        log.info("message %s: server tools %s are not used", started.run.id, ", ".join(ignored))
    builder = MessageBuilder(started, body.stop_sequences or (), ignored)
    if body.stream:
        return stream_message(started, builder)
    try:
        for _ in events_to_end(started, builder):
            pass
        return json_response(builder.message)
    finally:
        started.run.close()


def count_tokens() -> Response:
    body = read_json(CountTokensRequest)
    turn = chat_turn(body)
    engine = chat_turns.turn_engine(turn)
    prepared = chat_turns.prepare(turn, engine)
    return json_response(TokenCount(input_tokens=engine.count_tokens(prepared.prompt)))


def chat_turn(body: MessagesRequest) -> ChatTurn:
    messages = chat_messages(body.messages, chat_turns.image_reader())
    if body.system:
        system = body.system if isinstance(body.system, str) else "\n\n".join(b.text for b in body.system)
        messages = [ChatMessage("system", system), *messages]
    thinking = body.thinking.type if body.thinking else None
    return ChatTurn(
        model=body.model,
        messages=messages,
        options=body.chat_options(
            tools=tuple(tool.as_chat_tool() for tool in body.custom_tools()),
            tool_choice=tool_choice(body),
            enable_thinking={"enabled": True, "disabled": False}.get(thinking or ""),
        ),
        sampling=body,
        max_tokens=body.max_tokens,
        max_tokens_is_ceiling=True,
        drop_old_turns=False,  # Anthropic refuses a prompt that is too long, and so do we
        localdocs=body.localdocs,
        history_id=body.history_id,
        id_prefix="msg_",
        affinity=f"user:{body.metadata.user_id}" if body.metadata and body.metadata.user_id else None,
    )


def tool_choice(body: MessagesRequest) -> str | dict:
    choice = body.tool_choice
    if choice is None or choice.type == "auto":
        return "auto"
    if choice.type == "any":
        return "required"
    if choice.type == "none":
        return "none"
    if not choice.name:
        raise InvalidRequest("tool_choice of type 'tool' needs a name.", param="tool_choice.name")
    return {"type": "function", "function": {"name": choice.name}}


def chat_messages(messages: list[MessageIn], images: ImageReader) -> list[ChatMessage]:
    """Anthropic's messages as chat messages: an assistant's tool_use blocks are its tool
    calls, a user's tool_result blocks are tool messages (before the user's own text), and
    an image block puts a marker where it stands."""
    out: list[ChatMessage] = []
    calls: set[str] = set()
    for i, message in enumerate(messages):
        if isinstance(message.content, str):
            out.append(ChatMessage(message.role, escape_markers(message.content)))
            continue
        texts: list[str] = []
        found: list = []
        tool_calls: list[dict] = []
        for j, block in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            if isinstance(block, TextBlock):
                texts.append(escape_markers(block.text))
            elif isinstance(block, ImageBlock):
                found.append(read_image(block, where, images))
                texts.append(MARKER)
            elif isinstance(block, ToolUseBlock):
                if message.role != "assistant":
                    raise InvalidRequest("tool_use blocks belong to assistant messages.", param=where)
                calls.add(block.id)
                function = {"name": block.name, "arguments": json.dumps(block.input, ensure_ascii=False)}
                tool_calls.append({"id": block.id, "type": "function", "function": function})
            elif isinstance(block, ToolResultBlock):
                if block.tool_use_id not in calls:
                    raise InvalidRequest(
                        f"No tool_use block before this result has the id {block.tool_use_id!r}.",
                        param=f"{where}.tool_use_id",
                    )
                result, result_images = tool_result_content(block, where, images)
                out.append(ChatMessage("tool", result, tool_call_id=block.tool_use_id, images=result_images))
            elif not isinstance(block, ThinkingBlock):
                raise unreadable(where, block.type)
        if texts or tool_calls or not any(isinstance(b, ToolResultBlock) for b in message.content):
            content = "".join(texts)
            out.append(ChatMessage(message.role, content, tool_calls=tuple(tool_calls), images=tuple(found)))
    return out


def read_image(block: ImageBlock, where: str, images: ImageReader):
    source = block.source
    if isinstance(source, Base64Source):
        return images.read_base64(source.data, f"{where}.source.data")
    return images.read(source.url, f"{where}.source.url")


def tool_result_content(block: ToolResultBlock, where: str, images: ImageReader) -> tuple[str, tuple]:
    if isinstance(block.content, str):
        text, found = escape_markers(block.content), ()
    else:
        parts, found_list = [], []
        for k, part in enumerate(block.content):
            here = f"{where}.content.{k}"
            if isinstance(part, TextBlock):
                parts.append(escape_markers(part.text))
            elif isinstance(part, ImageBlock):
                found_list.append(read_image(part, here, images))
                parts.append(MARKER)
            else:
                raise unreadable(here, part.type)
        text, found = "".join(parts), tuple(found_list)
    return (f"Error: {text}" if block.is_error else text), found


# --- Pieces -> content blocks and events ------------------------------------------------------------


class MessageBuilder:
    """One mapping for both answers: the events of a stream, and the message they build."""

    def __init__(self, started: StartedTurn, stop_sequences, ignored_tools: list[str]) -> None:
        self.message = MessageOut(
            id=started.run.id,
            model=started.run.model,
            usage=UsageOut(input_tokens=started.prompt_tokens, output_tokens=0),
            ignored_tools=ignored_tools or None,
        )
        self._stop_sequences = set(stop_sequences)
        self._open: TextOut | ThinkingOut | ToolUseOut | None = None
        self._arguments: dict[int, str] = {}  # a call's arguments, as streamed (JSON text)
        self._calls: dict[int, ToolUseOut] = {}

    def opening(self) -> list[dict]:
        start = self.message.model_dump(mode="json", exclude={"ignored_tools"})
        return [{"type": "message_start", "message": start}, {"type": "ping"}]

    def feed(self, piece: Piece) -> list[dict]:
        events: list[dict] = []
        if piece.reasoning:
            events += self._delta(ThinkingOut, {"type": "thinking_delta", "thinking": piece.reasoning})
        if piece.text:
            events += self._delta(TextOut, {"type": "text_delta", "text": piece.text})
        for call in piece.tool_calls:
            if call.index not in self._calls:
                block = ToolUseOut(id=f"toolu_{secrets.token_hex(12)}", name=call.name or "")
                self._calls[call.index] = block
                self._arguments[call.index] = ""
                events += self._start(block)
            if call.arguments:
                self._arguments[call.index] += call.arguments
                events.append(self._event_delta({"type": "input_json_delta", "partial_json": call.arguments}))
        return events

    def finish(self, collected: Collected, usage: UsageTotals) -> list[dict]:
        events = self._stop()
        message = self.message
        if self._calls:
            message.stop_reason = "tool_use"
        elif collected.finish_reason == FINISH_LENGTH:
            message.stop_reason = "max_tokens"
        elif collected.stop_sequence in self._stop_sequences:
            message.stop_reason, message.stop_sequence = "stop_sequence", collected.stop_sequence
        else:
            message.stop_reason = "end_turn"
        # As Anthropic counts: input_tokens are the prompt tokens not read from the cache.
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        message.usage = UsageOut(
            input_tokens=usage.prompt_tokens - cached,
            output_tokens=usage.completion_tokens,
            cache_read_input_tokens=cached,
        )
        delta = {"stop_reason": message.stop_reason, "stop_sequence": message.stop_sequence}
        totals = message.usage.model_dump()
        return [*events, {"type": "message_delta", "delta": delta, "usage": totals}, {"type": "message_stop"}]

    def _delta(self, kind: type, delta: dict) -> list[dict]:
        events: list[dict] = []
        if not isinstance(self._open, kind):
            events += self._start(kind())
        block = self._open
        if isinstance(block, TextOut):
            block.text += delta["text"]
        elif isinstance(block, ThinkingOut):
            block.thinking += delta["thinking"]
        return [*events, self._event_delta(delta)]

    def _start(self, block: TextOut | ThinkingOut | ToolUseOut) -> list[dict]:
        events = self._stop()
        self.message.content.append(block)
        self._open = block
        shown = block.model_dump(mode="json")
        if isinstance(block, ToolUseOut):
            shown["input"] = {}  # its arguments follow as input_json_delta
        return [*events, {"type": "content_block_start", "index": self._index(), "content_block": shown}]

    def _event_delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": self._index(), "delta": delta}

    def _index(self) -> int:
        return len(self.message.content) - 1

    def _stop(self) -> list[dict]:
        block, self._open = self._open, None
        if block is None:
            return []
        events = []
        if isinstance(block, ThinkingOut):  # Hearth signs nothing: an empty signature
            events.append(self._event_delta({"type": "signature_delta", "signature": ""}))
        if isinstance(block, ToolUseOut):
            index = next(i for i, b in self._calls.items() if b is block)
            block.input = json.loads(self._arguments[index] or "{}")
        return [*events, {"type": "content_block_stop", "index": self._index()}]


def events_to_end(started: StartedTurn, builder: MessageBuilder) -> Iterator[dict]:
    yield from builder.opening()
    first = Collected(0)
    try:
        for piece in started.run.pieces():
            first.add(piece)
            yield from builder.feed(piece)
    finally:
        started.keep(first)
    yield from builder.finish(first, started.run.usage())


def stream_message(started: StartedTurn, builder: MessageBuilder) -> Response:
    events = events_to_end(started, builder)
    opening = [next(events), next(events)]
    try:  # a request that fails at once is still a plain HTTP error
        first = next(events, None)
    except BaseException:
        started.run.close()
        raise

    def all_events() -> Iterator[dict]:
        yield from opening
        if first is not None:
            yield first
            yield from events

    return sse_response(all_events(), started.run.close, ANTHROPIC)
