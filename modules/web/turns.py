"""One turn of a UI chat: build the prompt, stream the model's reply, save the result.

The prompt comes from `ChatService.prepare`, the same path the API takes; the edits to the
saved chat are `chat_log`'s pure functions, applied through `HistoryStore.update` so two
writers (two tabs, or the API recording into the same chat) never lose each other's change.

- send: the user's message is saved when the generation starts; the reply when it ends.
- regenerate: the prompt is the chat without its last reply; the old reply is replaced only
  when the new one ends (stopping before any text keeps the old one).
- continue: the last reply grows by what the model writes.
- impersonate: the model writes the user's next message (starting from the text already in
  the input box); nothing is saved, the text goes back into the input box.
Stopped or interrupted replies are saved as far as they got.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from modules.chat.chat_log import (
    Chat,
    append_exchange,
    append_reply,
    drop_last_reply,
    replace_last_reply,
    reply_message,
)
from modules.chat.messages import ChatMessage, ChatOptions, PreparedPrompt
from modules.chat.replies import ContentDelta, ReasoningDelta
from modules.chat.service import ChatService
from modules.engines.base import Generation, GenerationRequest, TextEngine, Usage, most_tokens
from modules.errors import HearthError, InvalidRequest

from .presets import Sampling

log = logging.getLogger(__name__)

ACTIONS = ("send", "regenerate", "continue", "impersonate")


@dataclass(frozen=True)
class TurnRequest:
    action: str
    mode: str
    character: str | None  # None in instruct mode
    chat_id: str
    text: str  # the new message (send) or the start of the user's next one (impersonate)
    sampling: Sampling
    user_name: str = ""
    user_bio: str = ""
    instruction_template: str = ""
    state: dict[str, Any] = field(default_factory=dict, compare=False)  # for extensions' hooks


@dataclass(frozen=True)
class TurnEvent:
    kind: str  # "content" | "reasoning"
    text: str


class Turn:
    """A running turn. Iterate `events()`, then call `save()` (also after a stop or error)."""

    def __init__(
        self,
        chat: ChatService,
        request: TurnRequest,
        generation: Generation,
        prepared: PreparedPrompt,
        options: ChatOptions,
        base: str,
    ) -> None:
        self.request = request
        self.generation = generation
        self.prepared = prepared
        self.base = base  # text the reply continues (continue, impersonate)
        self.content = ""
        self.reasoning = ""
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.started = time.monotonic()
        self.first_text_at: float | None = None
        self._chat = chat
        self._parser = chat.reply_parser(options, prepared)

    @property
    def text(self) -> str:
        """The whole message the turn produced (for continue: the old text and the new)."""
        return self.base + self.content

    def events(self) -> Iterator[TurnEvent]:
        for delta in self.generation:
            yield from self._events(self._parser.feed(delta.text))
            if delta.finish_reason:
                self.finish_reason, self.usage = delta.finish_reason, delta.usage
        yield from self._events(self._parser.finish())

    def _events(self, parsed) -> Iterator[TurnEvent]:
        for event in parsed:
            if isinstance(event, ContentDelta) and event.text:
                self.content += event.text
                self.first_text_at = self.first_text_at or time.monotonic()
                yield TurnEvent("content", event.text)
            elif isinstance(event, ReasoningDelta) and event.text:
                self.reasoning += event.text
                yield TurnEvent("reasoning", event.text)
            # tool calls: the UI offers no tools, so there are none to show

    def cancel(self) -> None:
        self.generation.cancel()

    def save(self) -> Chat | None:
        """Save what the turn produced; returns the saved chat (None when nothing changed)."""
        request, history = self.request, self._chat.history
        if request.action == "impersonate" or not self.content.strip():
            return None
        reply = reply_message(self.content, self.prepared.state.get("extras"))
        if request.action == "send":
            change = lambda chat: append_reply(chat, reply)  # noqa: E731
        elif request.action == "regenerate":
            change = lambda chat: append_reply(drop_last_reply(chat), reply)  # noqa: E731
        else:  # continue: the reply keeps what extensions added when it was first written
            text = self.text
            change = lambda chat: replace_last_reply(chat, text)  # noqa: E731
        return history.update(request.mode, request.character, request.chat_id, change)

    def stats(self) -> dict:
        elapsed = time.monotonic() - self.started
        out: dict = {"seconds": round(elapsed, 3)}
        if self.usage:
            out["prompt_tokens"] = self.usage.prompt_tokens
            out["completion_tokens"] = self.usage.completion_tokens
            if self.first_text_at and self.usage.completion_tokens > 1:
                generating = max(time.monotonic() - self.first_text_at, 1e-3)
                out["tokens_per_second"] = round(self.usage.completion_tokens / generating, 1)
        return out


def start_turn(chat: ChatService, engine: TextEngine, request: TurnRequest) -> Turn:
    """Build the prompt, start the generation and (for send) save the user's message."""
    if request.action not in ACTIONS:
        raise InvalidRequest(f"Unknown action {request.action!r}.", param="action")
    history = chat.history
    current = history.load(request.mode, request.character, request.chat_id)
    messages, base, continue_, impersonate = _conversation(current, request)
    options = ChatOptions(
        mode=request.mode,
        character=request.character,
        instruction_template=request.instruction_template or None,
        user_name=request.user_name or None,
        user_bio=request.user_bio or None,
        continue_=continue_,
        impersonate=impersonate,
    )
    n_ctx = engine.info.n_ctx
    wanted = request.sampling.max_tokens
    # History is trimmed to leave room for the reply, but never more than half the context.
    prepared = chat.prepare(
        messages,
        options,
        engine.info,
        count_tokens=engine.count_tokens,
        max_tokens=min(wanted, n_ctx // 2),
        request_state=request.state,
    )

    def room_for(tokens: int) -> bool:  # + BOS
        return tokens + 1 + wanted <= n_ctx

    # Counted only when it may not fit (counting a remote model's prompt is a round trip).
    fits = room_for(most_tokens(prepared.prompt)) or room_for(engine.count_tokens(prepared.prompt))
    max_tokens = wanted if fits else None  # None: to the context's end
    params = request.sampling.params(max_tokens=max_tokens, stop=prepared.stop, grammar=prepared.grammar)
    # The chat's turns meet its prompt cache (on an engine with several places to run them).
    affinity = f"chat:{request.mode}:{request.character}:{request.chat_id}"
    generation = engine.generate(GenerationRequest(prepared.prompt, params, affinity=affinity))
    if request.action == "send" and request.text:
        shown = prepared.visible_text if prepared.visible_text is not None else request.text
        try:
            history.update(
                request.mode, request.character, request.chat_id, lambda c: append_exchange(c, shown)
            )
        except HearthError:
            generation.close()
            raise
    return Turn(chat, request, generation, prepared, options, base)


def _conversation(current: Chat, request: TurnRequest) -> tuple[list[ChatMessage], str, bool, bool]:
    """The messages to build the prompt from, the text the reply continues, and the flags."""
    messages = list(current.messages)
    last = messages[-1] if messages else None
    action, text = request.action, request.text
    if action == "send":
        if text:
            return [*messages, ChatMessage("user", text)], "", False, False
        if last is not None and last.role == "user":  # e.g. after a failed reply: answer it now
            return messages, "", False, False
        raise InvalidRequest("Type a message first.", param="text")
    if action == "regenerate":
        return list(drop_last_reply(current).messages), "", False, False
    if action == "continue":
        if last is None or last.role != "assistant":
            raise InvalidRequest("There is no reply to continue.", param="action")
        return messages, last.content, True, False
    if text:  # impersonate, continuing what the user has typed
        return [*messages, ChatMessage("user", text)], text, True, True
    return messages, "", False, True
