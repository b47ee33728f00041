"""From a chat turn's pieces to the Responses API's output items and stream events.

One builder serves both answers: a stream sends every event it returns, a whole response
is the builder's response after the last piece. Output items open and close as the reply
moves from reasoning to text to tool calls:

    response.created, response.in_progress
    response.output_item.added (reasoning) / response.reasoning_text.delta ... .done / .output_item.done
    response.output_item.added (message) / response.content_part.added /
        response.output_text.delta ... / response.output_text.done / response.content_part.done /
        response.output_item.done
    response.output_item.added (function_call) / response.function_call_arguments.delta ... .done /
        response.output_item.done
    response.output_item.added (mcp_list_tools | mcp_call) / response.mcp_list_tools.in_progress ...
        .completed | .failed (response.mcp_call.*) / response.output_item.done
        (an item Hearth made whole: a server's tools, a call it ran; mcp_approval_request: added, done)
    response.completed | response.incomplete | response.failed (or an `error` event)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from modules.engines.base import FINISH_LENGTH, TokenLogprob
from modules.errors import HearthError

from .bodies import UsageOut
from .mcp_wire import OutputMcpApprovalRequest, OutputMcpCall, OutputMcpListTools
from .responses_wire import (
    IncompleteDetails,
    InputTokensDetails,
    OutputFunctionCall,
    OutputMessage,
    OutputReasoning,
    OutputText,
    OutputTokensDetails,
    ReasoningText,
    ResponseErrorOut,
    ResponseObject,
    ResponseUsage,
)
from .streaming import Piece


def item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class ResponseBuilder:
    def __init__(
        self, response: ResponseObject, *, count_tokens: Callable[[str], int], logprobs: bool
    ) -> None:
        self.response = response
        self._count_tokens = count_tokens
        self._logprobs = logprobs
        self._sequence = 0
        self._open: OutputMessage | OutputReasoning | OutputFunctionCall | None = None
        self._calls: dict[int, OutputFunctionCall] = {}  # by the parser's call index
        self._reasoning: list[str] = []

    # --- events --------------------------------------------------------------------------

    def _event(self, kind: str, **fields) -> dict:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _snapshot(self) -> dict:
        return self.response.model_dump(mode="json")

    def opening(self) -> list[dict]:
        self.response.status = "in_progress"
        return [
            self._event("response.created", response=self._snapshot()),
            self._event("response.in_progress", response=self._snapshot()),
        ]

    def feed(self, piece: Piece) -> list[dict]:
        events: list[dict] = []
        if piece.reasoning:
            events += self._reasoning_delta(piece.reasoning)
        if piece.text:
            events += self._text_delta(piece.text, piece.logprobs)
        for call in piece.tool_calls:
            events += self._call_delta(call.index, call.id, call.name, call.arguments)
        return events

    def finish(self, finish_reason: str, usage: UsageOut, *, cancelled: bool = False) -> list[dict]:
        incomplete = finish_reason == FINISH_LENGTH and not self._calls
        events = self._close("incomplete" if incomplete else "completed")
        response = self.response
        reasoning_tokens = self._count_tokens("".join(self._reasoning)) if self._reasoning else 0
        response.usage = ResponseUsage(
            input_tokens=usage.prompt_tokens,
            input_tokens_details=InputTokensDetails(
                cached_tokens=usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
            ),
            output_tokens=usage.completion_tokens,
            output_tokens_details=OutputTokensDetails(
                reasoning_tokens=min(reasoning_tokens, usage.completion_tokens)
            ),
            total_tokens=usage.total_tokens,
        )
        if cancelled:
            response.status = "cancelled"
            return events
        if incomplete:
            response.status = "incomplete"
            response.incomplete_details = IncompleteDetails(reason="max_output_tokens")
            return [*events, self._event("response.incomplete", response=self._snapshot())]
        response.status = "completed"
        response.completed_at = int(time.time())
        return [*events, self._event("response.completed", response=self._snapshot())]

    def fail(self, error: HearthError) -> list[dict]:
        """The events that end a stream that failed: `error`, then `response.failed`."""
        events = self._close("incomplete")
        self.response.status = "failed"
        self.response.error = ResponseErrorOut(code=error_code(error), message=error.message)
        return [
            *events,
            self._event("error", code=error.code or error.type, message=error.message, param=error.param),
            self._event("response.failed", response=self._snapshot()),
        ]

    # --- items ---------------------------------------------------------------------------

    def _add(self, item: OutputMessage | OutputReasoning | OutputFunctionCall) -> list[dict]:
        events = self._close("completed")
        self.response.output.append(item)
        self._open = item
        return [
            *events,
            self._event("response.output_item.added", output_index=self._index(), item=_dump(item)),
        ]

    def add_whole(self, item: OutputMcpListTools | OutputMcpCall | OutputMcpApprovalRequest) -> list[dict]:
        """An item that is complete when it is added (what Hearth did between the model's turns)."""
        events = self._close("completed")
        self.response.output.append(item)
        index = self._index()
        events.append(self._event("response.output_item.added", output_index=index, item=_dump(item)))
        family = {"mcp_call": "response.mcp_call", "mcp_list_tools": "response.mcp_list_tools"}.get(item.type)
        if family is not None:
            failed = bool(getattr(item, "error", None))
            for stage in ("in_progress", "failed" if failed else "completed"):
                events.append(self._event(f"{family}.{stage}", item_id=item.id, output_index=index))
        events.append(self._event("response.output_item.done", output_index=index, item=_dump(item)))
        return events

    def _index(self) -> int:
        return len(self.response.output) - 1

    def _reasoning_delta(self, text: str) -> list[dict]:
        events: list[dict] = []
        if not isinstance(self._open, OutputReasoning):
            events += self._add(OutputReasoning(id=item_id("rs"), content=[ReasoningText()]))
        item = self._open
        assert isinstance(item, OutputReasoning)
        item.content[0].text += text
        self._reasoning.append(text)
        return [
            *events,
            self._event(
                "response.reasoning_text.delta",
                item_id=item.id,
                output_index=self._index(),
                content_index=0,
                delta=text,
            ),
        ]

    def _text_delta(self, text: str, logprobs: tuple[TokenLogprob, ...]) -> list[dict]:
        events: list[dict] = []
        if not isinstance(self._open, OutputMessage):
            events += self._add(OutputMessage(id=item_id("msg")))
            part = OutputText()
            self._open.content.append(part)  # type: ignore[union-attr]
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self._open.id,  # type: ignore[union-attr]
                    output_index=self._index(),
                    content_index=0,
                    part=_dump(part),
                )
            )
        item = self._open
        assert isinstance(item, OutputMessage)
        part = item.content[0]
        part.text += text
        entries = [_logprob(entry) for entry in logprobs] if self._logprobs else []
        part.logprobs.extend(entries)
        return [
            *events,
            self._event(
                "response.output_text.delta",
                item_id=item.id,
                output_index=self._index(),
                content_index=0,
                delta=text,
                logprobs=entries,
            ),
        ]

    def _call_delta(self, index: int, call_id: str | None, name: str | None, arguments: str) -> list[dict]:
        events: list[dict] = []
        if index not in self._calls:
            call = OutputFunctionCall(id=item_id("fc"), call_id=call_id or item_id("call"), name=name or "")
            self._calls[index] = call
            events += self._add(call)
        call = self._calls[index]
        if not arguments:
            return events
        call.arguments += arguments
        return [
            *events,
            self._event(
                "response.function_call_arguments.delta",
                item_id=call.id,
                output_index=self.response.output.index(call),
                delta=arguments,
            ),
        ]

    def _close(self, status: str) -> list[dict]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self.response.output.index(item)
        item.status = status  # type: ignore[assignment]
        events = []
        if isinstance(item, OutputMessage):
            part = item.content[0]
            where = {"item_id": item.id, "output_index": index, "content_index": 0}
            events += [
                self._event("response.output_text.done", **where, text=part.text, logprobs=part.logprobs),
                self._event("response.content_part.done", **where, part=_dump(part)),
            ]
        elif isinstance(item, OutputReasoning):
            events.append(
                self._event(
                    "response.reasoning_text.done",
                    item_id=item.id,
                    output_index=index,
                    content_index=0,
                    text=item.content[0].text,
                )
            )
        else:
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=index,
                    name=item.name,
                    arguments=item.arguments,
                )
            )
        events.append(self._event("response.output_item.done", output_index=index, item=_dump(item)))
        return events


def error_code(error: HearthError) -> str:
    """The nearest of the codes a response's `error` may have."""
    if error.status == 429:
        return "rate_limit_exceeded"
    return "invalid_prompt" if 400 <= error.status < 500 else "server_error"


def _dump(item) -> dict:
    return item.model_dump(mode="json")


def _logprob(entry: TokenLogprob) -> dict:
    return {
        "token": entry.token,
        "logprob": entry.logprob if entry.logprob is not None else -9999.0,
        "bytes": list(entry.bytes),
        "top_logprobs": [
            {"token": top.token, "logprob": top.logprob, "bytes": list(top.bytes)} for top in entry.top
        ],
    }
