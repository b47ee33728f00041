"""Turning the model's streamed text into content, reasoning and tool-call events.

A whole (non-streamed) reply is the same parser fed once. The parser holds back only text
that could still turn out to be a marker (`<think>`, `</think>`, `<tool_call>`,
`[TOOL_CALLS]`) or a name placeholder; a reply that starts like an untagged tool call
(`{`, `[` or `<|python_tag|>`, when tools are on) is held to the end, because only the whole
text tells. On `finish()`, incomplete or malformed tool-call text becomes plain content.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from modules.chat import toolcalls
from modules.chat.placeholders import PLACEHOLDERS, fill_placeholders
from modules.chat.reasoning import THINK_CLOSE, THINK_OPEN
from modules.chat.toolcalls import (
    MISTRAL_MARKER,
    PYTHON_TAG,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    ParsedCall,
)


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """Part of tool call `index`: the first delta of a call has its id and name (and
    arguments ""), the next ones argument fragments (id and name None)."""

    index: int
    id: str | None
    name: str | None
    arguments: str


ReplyEvent = ContentDelta | ReasoningDelta | ToolCallDelta


@dataclass(frozen=True)
class Reply:
    """A whole reply, parsed."""

    content: str
    reasoning: str
    tool_calls: tuple[dict, ...]  # OpenAI shape, arguments as a JSON string


def new_call_id() -> str:
    return "call_" + os.urandom(12).hex()


_CONTENT, _REASONING, _TAG, _TAIL = "content", "reasoning", "tag", "tail"


class ReplyParser:
    def __init__(
        self,
        *,
        parse_tools: bool = False,
        tool_names: Iterable[str] = (),
        names: tuple[str, str] | None = None,
        starts_in_reasoning: bool = False,
        trim: bool = False,
        output_modifier: Callable[[str], str] | None = None,
        call_id: Callable[[], str] = new_call_id,
    ) -> None:
        """
        parse_tools: look for tool calls (tools given and tool_choice not "none").
        tool_names: the functions that may be called (untagged formats must name one).
        names: (user, bot) to fill `{{user}}`/`{{char}}`/`<USER>`/`<BOT>` in, or None.
        starts_in_reasoning: the prompt opened a `<think>` block.
        trim: drop whitespace at the start and end of the content (chat modes).
        output_modifier: applied to each piece of content (extensions).
        """
        self._parse_tools = parse_tools
        self._tool_names = frozenset(tool_names)
        self._names = names
        self._trim = trim
        self._modifier = output_modifier
        self._call_id = call_id
        self._state = _REASONING if starts_in_reasoning else _CONTENT
        self._buf = ""
        self._pending_space = ""  # whitespace held until something follows it
        self._started = False  # some non-whitespace content was emitted
        self._after_reasoning = False  # a reasoning block ended (its trailing "\n\n" goes)
        self._finished = False
        self.tool_calls: list[dict] = []  # the calls found so far, OpenAI shape
        markers = [THINK_OPEN]
        if parse_tools:
            markers += [TOOL_CALL_OPEN, MISTRAL_MARKER]
        self._markers = tuple(markers)
        self._guards = tuple(markers) + (PLACEHOLDERS if names else ()) + (PYTHON_TAG,)

    # --- public ------------------------------------------------------------------------

    def feed(self, text: str) -> list[ReplyEvent]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._buf += text
        return self._drain(final=False)

    def finish(self) -> list[ReplyEvent]:
        if self._finished:
            return []
        events = self._drain(final=True)
        self._finished = True
        if self._pending_space and not self.tool_calls and not self._trim:
            events += self._out_content(self._pending_space)
        self._pending_space = ""
        return events

    def whole(self, text: str) -> Reply:
        """Parse a whole reply at once."""
        return collect([*self.feed(text), *self.finish()], self.tool_calls)

    # --- the state machine ---------------------------------------------------------------

    def _drain(self, *, final: bool) -> list[ReplyEvent]:
        out: list[ReplyEvent] = []
        while True:
            if self._state == _REASONING:
                end = self._buf.find(THINK_CLOSE)
                if end >= 0:
                    out += self._reasoning(self._buf[:end])
                    self._buf = self._buf[end + len(THINK_CLOSE) :]
                    self._state = _CONTENT
                    self._after_reasoning = True
                    continue
                out += self._reasoning(self._take(final, (THINK_CLOSE, *PLACEHOLDERS)))
                return out
            if self._state == _TAG:
                end = self._buf.find(TOOL_CALL_CLOSE)
                if end < 0:
                    if final:  # never closed: a call cut inside its closing tag, or not a call
                        calls = toolcalls.parse_tagged(_without_partial_close(self._buf))
                        out += self._calls(calls) if calls else self._content(self._buf)
                        self._buf = ""
                    return out
                raw = self._buf[: end + len(TOOL_CALL_CLOSE)]
                self._buf = self._buf[len(raw) :]
                self._state = _CONTENT
                calls = toolcalls.parse_tagged(raw[len(TOOL_CALL_OPEN) : -len(TOOL_CALL_CLOSE)])
                out += self._calls(calls) if calls else self._content(raw)
                continue
            if self._state == _TAIL:
                if final:
                    calls = toolcalls.parse_whole(self._buf, self._tool_names)
                    out += self._calls(calls) if calls else self._content(self._buf)
                    self._buf = ""
                return out
            # content
            opening = self._buf.lstrip().startswith(("{", "[", PYTHON_TAG))
            if self._parse_tools and not self._started and opening:
                self._state = _TAIL
                continue
            found = [(i, m) for m in self._markers if (i := self._buf.find(m)) >= 0]
            if found:
                start, marker = min(found)
                out += self._content(self._buf[:start])
                if marker == THINK_OPEN:
                    self._buf = self._buf[start + len(THINK_OPEN) :]
                    self._state = _REASONING
                else:
                    self._buf = self._buf[start:]
                    self._state = _TAG if marker == TOOL_CALL_OPEN else _TAIL
                continue
            out += self._content(self._take(final, self._guards))
            return out

    def _take(self, final: bool, guards: Sequence[str]) -> str:
        """Remove and return the buffer, less a tail that could still become a guard."""
        keep = 0 if final else _partial_suffix(self._buf, guards)
        text, self._buf = (
            self._buf[: len(self._buf) - keep],
            self._buf[len(self._buf) - keep :],
        )
        return text

    # --- events ------------------------------------------------------------------------

    def _fill(self, text: str) -> str:
        if self._names and text:
            return fill_placeholders(text, user=self._names[0], bot=self._names[1])
        return text

    def _reasoning(self, text: str) -> list[ReplyEvent]:
        text = self._fill(text)
        return [ReasoningDelta(text)] if text else []

    def _content(self, text: str) -> list[ReplyEvent]:
        text = self._pending_space + self._fill(text)
        self._pending_space = ""
        if (self._trim or self._after_reasoning) and not self._started:
            text = text.lstrip()
        body = text.rstrip()
        self._pending_space = text[len(body) :]
        if not body:
            return []
        self._started = True
        return self._out_content(body)

    def _out_content(self, text: str) -> list[ReplyEvent]:
        if self._modifier:
            text = self._modifier(text)
        return [ContentDelta(text)] if text else []

    def _calls(self, calls: list[ParsedCall]) -> list[ReplyEvent]:
        out: list[ReplyEvent] = []
        self._pending_space = ""  # whitespace around calls is not content
        for call in calls:
            index, call_id = len(self.tool_calls), self._call_id()
            self.tool_calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            )
            out += [
                ToolCallDelta(index, call_id, call.name, ""),
                ToolCallDelta(index, None, None, call.arguments),
            ]
        return out


def _without_partial_close(block: str) -> str:
    """The body of an unclosed `<tool_call>` block, less a cut-off `</tool_call>` at its end
    (a length limit can end the reply inside the closing tag of a complete call)."""
    body = block[len(TOOL_CALL_OPEN) :].rstrip()
    for n in range(len(TOOL_CALL_CLOSE) - 1, 0, -1):
        if body.endswith(TOOL_CALL_CLOSE[:n]):
            return body[:-n]
    return body


def _partial_suffix(text: str, guards: Sequence[str]) -> int:
    """The length of the longest end of `text` that begins one of `guards` (any case)."""
    low = text[-max(map(len, guards)) :].lower()
    for n in range(len(low), 0, -1):
        end = low[-n:]
        if any(len(g) > n and g.lower().startswith(end) for g in guards):
            return n
    return 0


def collect(events: Iterable[ReplyEvent], tool_calls: Sequence[dict] = ()) -> Reply:
    content, reasoning = [], []
    for event in events:
        if isinstance(event, ContentDelta):
            content.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
    return Reply("".join(content), "".join(reasoning), tuple(tool_calls))
